//! Commands on single keys: create, list, get, update, delete, activate,
//! deactivate, rotate, credits, verify.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use keygate::{
    ApiKey, ApiKeyService, ApiKeyUpdate, CreditChange, Credits, NewApiKey, RateLimit, KEY_ID_LEN,
    PEPPER_ENV,
};
use zeroize::Zeroizing;

use super::last_admin::{self, Change};
use crate::cli::{
    CreateArgs, CreditsArgs, DeleteArgs, ForceIdArgs, GetArgs, IdArg, PageArgs, Refill, RotateArgs,
    UpdateArgs, VerifyArgs,
};
use crate::output::Report;

pub(super) async fn create(service: &ApiKeyService, args: CreateArgs) -> Result<Report> {
    let new = NewApiKey {
        name: Some(args.name),
        description: args.description,
        is_active: !args.inactive,
        expires_at: expiry(args.expires_at, args.expires_in)?,
        scopes: non_empty(args.scopes),
        owner_id: args.owner_id,
        meta: args.meta,
        rate_limits: non_empty_limits(args.rate_limits),
        credits: args.credits.map(|n| credits(n, args.refill)),
        ..NewApiKey::default()
    };
    let (entity, key) = service.create(new).await?;
    tracing::info!(id = %entity.id, key_id = %entity.key_id, "API key created");
    warn_if_placeholder(service, Use::Written);
    Ok(Report::Created { entity, key })
}

pub(super) async fn list(service: &ApiKeyService, args: PageArgs) -> Result<Report> {
    Ok(Report::List(service.list(args.offset, args.limit).await?))
}

pub(super) async fn get(service: &ApiKeyService, args: GetArgs) -> Result<Report> {
    let entity = match (args.key_id, args.id) {
        (Some(key_id), _) => service.get_by_key_id(&key_id).await?,
        (None, Some(raw)) => {
            // May be a whole key: zeroized on drop, never echoed.
            let raw = Zeroizing::new(raw);
            let text = if raw.as_str() == "-" {
                read_stdin("cannot read the id from stdin")?
            } else {
                raw
            };
            lookup(service, text.trim()).await?
        }
        (None, None) => unreachable!("clap requires an id or --key-id"),
    };
    Ok(Report::Entity {
        headline: None,
        entity,
    })
}

/// Finds a key by whatever identifies it: a whole key (only its key id is
/// used; the secret is not checked), a key id (16 hex), else an entity id.
async fn lookup(service: &ApiKeyService, text: &str) -> Result<ApiKey, keygate::Error> {
    if let Ok(parsed) = service.key_format().parse(text) {
        return service.get_by_key_id(parsed.key_id).await;
    }
    if text.len() == KEY_ID_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return service.get_by_key_id(text).await;
    }
    service.get(text).await
}

pub(super) async fn update(service: &ApiKeyService, args: UpdateArgs) -> Result<Report> {
    let change = ApiKeyUpdate {
        name: args.name,
        description: set_or_clear(args.description, args.clear_description),
        is_active: tri_state(args.active, args.inactive),
        scopes: args.scopes.map(non_empty),
        expires_at: expiry(args.expires_at, args.expires_in)?,
        clear_expires: args.clear_expires,
        owner_id: set_or_clear(args.owner_id, args.clear_owner),
        meta: set_or_clear(args.meta, args.clear_meta),
        rate_limits: set_or_clear(non_empty_limits(args.rate_limits), args.clear_rate_limits),
        credits: set_or_clear(
            args.credits.map(|n| credits(n, args.refill)),
            args.clear_credits,
        ),
    };
    last_admin::check(service, &args.id, Change::Update(&change), args.force).await?;
    let entity = service.update(&args.id, change).await?;
    Ok(Report::Entity {
        headline: Some("API key updated.".into()),
        entity,
    })
}

pub(super) async fn delete(service: &ApiKeyService, args: DeleteArgs) -> Result<Report> {
    last_admin::check(service, &args.id, Change::Delete, args.force).await?;
    // On a terminal, a person confirms; scripts and pipes never wait.
    let stdin = std::io::stdin();
    if !args.yes && stdin.is_terminal() {
        let entity = service.get(&args.id).await?;
        let question = delete_question(&entity);
        if !confirm(&question, &mut stdin.lock(), &mut std::io::stderr())? {
            anyhow::bail!("not deleted: API key {} is kept", entity.id);
        }
    }
    let entity = service.delete(&args.id).await?;
    Ok(Report::Entity {
        headline: Some("API key deleted:".into()),
        entity,
    })
}

pub(super) async fn activate(service: &ApiKeyService, args: IdArg) -> Result<Report> {
    let entity = service.activate(&args.id).await?;
    Ok(Report::Entity {
        headline: Some("API key active.".into()),
        entity,
    })
}

pub(super) async fn deactivate(service: &ApiKeyService, args: ForceIdArgs) -> Result<Report> {
    last_admin::check(service, &args.id, Change::Deactivate, args.force).await?;
    let entity = service.deactivate(&args.id).await?;
    Ok(Report::Entity {
        headline: Some("API key inactive: it is refused from now on.".into()),
        entity,
    })
}

pub(super) async fn rotate(service: &ApiKeyService, args: RotateArgs) -> Result<Report> {
    let (entity, key) = service.rotate(&args.id, args.grace).await?;
    tracing::info!(id = %entity.id, key_id = %entity.key_id, "API key rotated");
    warn_if_placeholder(service, Use::Written);
    Ok(Report::Rotated { entity, key })
}

/// `credits ID --add N | --set N`: one atomic change in the store.
pub(super) async fn change_credits(service: &ApiKeyService, args: CreditsArgs) -> Result<Report> {
    let change = match (args.add, args.set) {
        (Some(delta), _) => CreditChange::Add(delta),
        (None, Some(n)) => CreditChange::Set(n),
        (None, None) => unreachable!("clap requires --add or --set"),
    };
    // An entity id is used as it is; a key id (or a whole key) is looked up.
    let id = if is_entity_id(&args.id) {
        args.id
    } else {
        lookup(service, args.id.trim()).await?.id
    };
    let entity = match service.change_credits(&id, change).await {
        Err(keygate::Error::Conflict(_)) if matches!(change, CreditChange::Add(_)) => {
            anyhow::bail!(
                "key {id} has no credits (its use is unlimited), so there is nothing to add to: \
                 give it some with `keygate credits {id} --set N`"
            )
        }
        other => other?,
    };
    let remaining = entity
        .credits
        .as_ref()
        .map_or(0, |c| c.at(chrono::Utc::now()).remaining);
    Ok(Report::Entity {
        headline: Some(format!("Credits updated: {remaining} remaining.")),
        entity,
    })
}

pub(super) async fn verify(service: &ApiKeyService, args: VerifyArgs) -> Result<Report> {
    let key = if args.key == "-" {
        read_stdin("cannot read the key from stdin")?
    } else {
        Zeroizing::new(args.key)
    };
    let scopes = non_empty(args.scopes);
    warn_if_placeholder(service, Use::Checked);
    let verified = match service.verify_with(&key, &scopes, args.cost).await {
        Ok(verified) => verified,
        Err(e @ (keygate::Error::InvalidKey | keygate::Error::KeyNotFound)) => {
            return Err(invalid_key(service, &key, &e).await)
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Report::Verified {
        entity: (*verified.key).clone(),
        usage: verified.usage,
        cost: args.cost,
    })
}

/// `API key invalid`, the words HTTP answers with (401) for a malformed
/// key, an unknown key id and a wrong secret alike (SPEC §6), with what an
/// operator can learn from the database they hold: whether the key id is
/// known here, and if so that the secret or the pepper differs. Never any
/// part of the secret, the hash or the pepper.
async fn invalid_key(service: &ApiKeyService, key: &str, error: &keygate::Error) -> anyhow::Error {
    let Ok(parsed) = service.key_format().parse(key) else {
        return anyhow::anyhow!("API key invalid (not a key of the form ak_v1-<key id>-<secret>)");
    };
    let key_id = parsed.key_id;
    let known = match error {
        keygate::Error::KeyNotFound => false,
        _ => service.get_by_key_id(key_id).await.is_ok(),
    };
    if !known {
        return anyhow::anyhow!(
            "API key invalid (no key with key id {key_id} in this database: deleted, or created elsewhere)"
        );
    }
    let pepper = if service.hasher().pepper().is_placeholder() {
        format!("{PEPPER_ENV} is not set here, so the placeholder pepper was used")
    } else {
        format!("{PEPPER_ENV} may differ from the one the key was created with")
    };
    anyhow::anyhow!(
        "API key invalid (key id {key_id} exists, but the secret does not match: a mistyped or \
         rotated-out key, or {pepper})"
    )
}

/// Whether a plaintext key is written (create, rotate) or checked (verify).
#[derive(Clone, Copy)]
enum Use {
    Written,
    Checked,
}

/// One line on stderr when a key is written or checked with the built-in
/// placeholder pepper (SPEC §7): such a key stops verifying the moment a
/// real pepper is set, with nothing but `API key invalid` to say why.
fn warn_if_placeholder(service: &ApiKeyService, how: Use) {
    if !service.hasher().pepper().is_placeholder() {
        return;
    }
    let what = match how {
        Use::Written => {
            "this key is hashed with the public placeholder pepper and will not verify once a real one is set"
        }
        Use::Checked => "the key is checked with the public placeholder pepper",
    };
    eprintln!("keygate: warning: {PEPPER_ENV} is not set: {what} (make one with `keygate pepper`)");
}

/// `--expires-at TIME` or `--expires-in DURATION` (clap makes them
/// exclusive) as the time to store.
fn expiry(at: Option<DateTime<Utc>>, after: Option<Duration>) -> Result<Option<DateTime<Utc>>> {
    match (at, after) {
        (Some(at), _) => Ok(Some(at)),
        (None, Some(after)) => {
            let after = chrono::TimeDelta::from_std(after).context("--expires-in is too long")?;
            Utc::now()
                .checked_add_signed(after)
                .map(Some)
                .context("--expires-in is too long")
        }
        (None, None) => Ok(None),
    }
}

/// `Delete API key 5b8f… (name "ci", key id 7a74…) for good? It cannot be
/// undone. [y/N] `: what a person needs to be sure it is the right key.
fn delete_question(entity: &ApiKey) -> String {
    let name = entity.name.as_deref().map_or_else(String::new, |n| {
        format!("name {:?}, ", crate::table::sanitize(n))
    });
    format!(
        "Delete API key {} ({name}key id {}) for good? It cannot be undone. [y/N] ",
        entity.id, entity.key_id
    )
}

/// Asks `question` on `out`, reads one line from `input`: true for `y` or
/// `yes` (any case), false for anything else, an empty line or end of input.
fn confirm(question: &str, input: &mut impl BufRead, out: &mut impl Write) -> Result<bool> {
    out.write_all(question.as_bytes())?;
    out.flush()?;
    let mut answer = String::new();
    input
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    let answer = answer.trim();
    Ok(answer.eq_ignore_ascii_case("y") || answer.eq_ignore_ascii_case("yes"))
}

/// All of stdin, trimmed, zeroized on drop.
fn read_stdin(what: &'static str) -> Result<Zeroizing<String>> {
    let mut buf = Zeroizing::new(String::new());
    std::io::stdin().read_to_string(&mut buf).context(what)?;
    Ok(Zeroizing::new(buf.trim().to_owned()))
}

/// `--x VALUE` / `--clear-x` (clap makes them exclusive) as a partial update.
fn set_or_clear<T>(value: Option<T>, clear: bool) -> Option<Option<T>> {
    if clear {
        Some(None)
    } else {
        value.map(Some)
    }
}

/// 32 hex characters: an entity id.
fn is_entity_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `--credits N [--refill N/INTERVAL]` as the credits to store.
fn credits(remaining: u64, refill: Option<Refill>) -> Credits {
    let credits = Credits::new(remaining);
    match refill {
        Some(r) => credits.refilled(r.amount, r.interval),
        None => credits,
    }
}

/// No `--rate-limit` flag: no change (update) or no limit (create).
fn non_empty_limits(limits: Vec<RateLimit>) -> Option<Vec<RateLimit>> {
    (!limits.is_empty()).then_some(limits)
}

/// `--scopes ''` parses as one empty string: it means "no scopes".
fn non_empty(scopes: Vec<String>) -> Vec<String> {
    scopes.into_iter().filter(|s| !s.is_empty()).collect()
}

/// `--active` / `--inactive` (clap makes them exclusive).
pub(super) fn tri_state(yes: bool, no: bool) -> Option<bool> {
    match (yes, no) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::confirm;

    #[test]
    fn only_yes_confirms() {
        for (answer, yes) in [
            ("y\n", true),
            ("YES\n", true),
            (" yes \n", true),
            ("n\n", false),
            ("\n", false),
            ("", false),
            ("yep\n", false),
        ] {
            let mut out = Vec::new();
            let got = confirm("Delete? [y/N] ", &mut answer.as_bytes(), &mut out).unwrap();
            assert_eq!(got, yes, "{answer:?}");
            assert_eq!(out, b"Delete? [y/N] ");
        }
    }
}
