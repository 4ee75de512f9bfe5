//! The README's 60-second tour, run as written.
//!
//! Every ```sh block between `<!-- tour:` and `<!-- tour end -->` in
//! `crates/keygate-cli/README.md` runs, in order, in one bash, in an empty
//! temporary directory, with the `keygate` built for this test first on
//! PATH and none of keygate's variables set. Each block's output (stdout
//! and stderr, as a terminal shows them) must equal the ```text block
//! after it (none: no output), once ids, key ids, keys and times are
//! replaced by placeholders on both sides. Only the port changes: the
//! tour's `127.0.0.1:8000` becomes a free port, so the test never meets a
//! server that happens to run on 8000.
//!
//! Needs bash, curl and jq (as the tour does): without them the test is
//! skipped with a note, unless CI=true, where that is a failure.
// libc calls (signals, limits, terminals) on the child processes under test.
#![allow(unsafe_code)]

mod support;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;

const README: &str = include_str!("../README.md");
const ROOT_README: &str = include_str!("../../../README.md");
const START: &str = "<!-- tour:";
const END: &str = "<!-- tour end -->";
/// What the tour's commands use; replaced by a free port.
const TOUR_ADDR: &str = "127.0.0.1:8000";

/// One command block and the output the README shows for it.
#[derive(Debug)]
struct Step {
    script: String,
    expected: String,
}

/// The fenced blocks of `text`: (info string, content).
fn fenced_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut open, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(rest)) if rest.trim().is_empty() => {
                blocks.extend(open.take());
            }
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "an unclosed code block in the tour");
    blocks
}

/// The tour's steps, as the README has them.
fn tour() -> Vec<Step> {
    let heading = README
        .find("## 60-second tour\n")
        .expect("the README has a `## 60-second tour` section");
    let start = README.find(START).expect("the tour's start marker");
    let end = README.find(END).expect("the tour's end marker");
    assert!(
        heading < start && start < end,
        "markers inside the tour section"
    );
    let next_heading = README[heading + 3..].find("\n## ").map(|i| i + heading + 3);
    assert!(
        next_heading.is_none_or(|h| end < h),
        "the tour ends inside its section"
    );
    let body = &README[start..end];
    let body = &body[body.find("-->").expect("end of the start marker") + 3..];
    let mut steps: Vec<Step> = Vec::new();
    for (info, content) in fenced_blocks(body) {
        match info.as_str() {
            "sh" => steps.push(Step {
                script: content,
                expected: String::new(),
            }),
            "text" => {
                let step = steps
                    .last_mut()
                    .expect("an output block after a command block");
                assert!(step.expected.is_empty(), "two output blocks for one step");
                step.expected = content;
            }
            other => panic!("a ```{other} block in the tour: only sh and text"),
        }
    }
    assert!(steps.len() >= 4, "{steps:?}");
    steps
}

/// `text` with what differs from run to run replaced: keys, entity ids,
/// key ids and times; trailing blanks and blank lines at the end removed.
fn normalize(text: &str) -> String {
    let rules = [
        (r"ak_v1-[0-9a-f]{16}-[A-Za-z0-9]{64}", "[KEY]"),
        (r"\b[0-9a-f]{32}\b", "[ID]"),
        (r"\b[0-9a-f]{16}\b", "[KEY_ID]"),
        (r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", "[TIME]"),
    ];
    let mut text = text.to_owned();
    for (pattern, placeholder) in rules {
        text = Regex::new(pattern)
            .unwrap()
            .replace_all(&text, placeholder)
            .into_owned();
    }
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    lines.join("\n").trim_end().to_owned()
}

/// True when `program --version` runs.
fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Marks the end of a step's output.
const STEP_END: &str = "@@tour-step-end@@";

#[test]
fn the_readme_tour_runs_as_written() {
    let steps = tour();
    let missing: Vec<&str> = ["bash", "curl", "jq"]
        .into_iter()
        .filter(|p| !available(p))
        .collect();
    if !missing.is_empty() {
        assert!(
            !ci(),
            "the tour needs {missing:?} (CI=true: missing is an error)"
        );
        eprintln!("SKIPPED: the tour needs {missing:?}, not found");
        return;
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    // stderr with stdout, in order, as a terminal shows them.
    let mut script = String::from("exec 2>&1\n");
    for step in &steps {
        script.push_str(&step.script.replace(TOUR_ADDR, &addr));
        script.push_str(&format!("\necho {STEP_END}\n"));
    }
    let scripts = tempfile::tempdir().unwrap();
    let path = scripts.path().join("tour.sh");
    std::fs::write(&path, &script).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(support::BIN).parent().unwrap();
    let path_var = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let mut cmd = Command::new("bash");
    for var in [
        "DATABASE_URL",
        "API_KEY_PEPPER",
        "RUST_LOG",
        "KEYGATE_ENV",
        "KEYGATE_ACTOR",
        "KEYGATE_LOG_FORMAT",
        "REDIS_URL",
        "CLICOLOR_FORCE",
        "COLUMNS",
    ] {
        cmd.env_remove(var);
    }
    cmd.arg(&path)
        .current_dir(dir.path())
        .env("PATH", path_var)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // Its own process group: whatever the tour leaves running goes with it.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().expect("run bash");
    let group = libc::pid_t::try_from(child.id()).unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // SAFETY: kill(2) on the process group of the bash spawned above.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let _ = child.wait();
    let output = reader.join().unwrap();
    let status = status.unwrap_or_else(|| panic!("the tour took over 2 minutes:\n{output}"));

    let outputs: Vec<&str> = output.split(&format!("{STEP_END}\n")).collect();
    assert_eq!(
        outputs.len(),
        steps.len() + 1,
        "every step ran (bash: {status}):\n{output}"
    );
    for (i, (step, got)) in steps.iter().zip(&outputs).enumerate() {
        assert_eq!(
            normalize(got),
            normalize(&step.expected),
            "step {} of the tour:\n{}\nprinted:\n{got}\nthe README shows:\n{}",
            i + 1,
            step.script,
            step.expected
        );
    }
    assert!(status.success(), "bash: {status}\n{output}");
    // The tour's files stayed in its directory: the database, the log.
    assert!(dir.path().join("keygate.db").exists());
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(log.contains("pending last_used_at values written"), "{log}");
}

#[test]
fn the_root_readme_points_to_the_tour() {
    assert!(
        ROOT_README.contains("crates/keygate-cli/README.md#60-second-tour"),
        "the root README links the tour"
    );
    assert!(README.contains("\n## 60-second tour\n"));
}

#[test]
fn normalizing_keeps_what_matters() {
    let a = "4db20b199f88944fbe5fc55810139c63  c30328333a3b8404  admin  2026-06-01T09:30:00Z \n";
    let b = "0123456789abcdef0123456789abcdef  0123456789abcdef  admin  2031-01-01T00:00:00.5Z";
    assert_eq!(normalize(a), normalize(b));
    assert_eq!(normalize(a), "[ID]  [KEY_ID]  admin  [TIME]");
    assert_ne!(normalize("admin"), normalize("admim"));
    let key = format!("ak_v1-{}-{}", "a".repeat(16), "Z".repeat(64));
    assert_eq!(normalize(&key), "[KEY]");
}
