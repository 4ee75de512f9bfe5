// keygate dashboard: progressive enhancement only; every form works without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Copy buttons: `data-copy` names the element whose text is copied.
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    var status = document.getElementById("copy-status");
    if (!source || !navigator.clipboard) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(source.textContent.trim()).then(
        function () {
          if (status) {
            status.textContent = "Copied";
          }
        },
        function () {
          if (status) {
            status.textContent = "Copy failed: select the key and copy it by hand.";
          }
        }
      );
    });
  });
  // A form refused with problems: focus its summary, so keyboard and
  // screen-reader users land on the list of what to fix.
  var summary = document.getElementById("error-summary");
  if (summary) {
    summary.focus();
  }
});
