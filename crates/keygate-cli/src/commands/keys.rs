//! Commands on single keys: create, list, get, update, delete, activate,
//! deactivate, verify.

use std::io::Read;

use anyhow::{Context, Result};
use keygate::{ApiKeyService, ApiKeyUpdate, NewApiKey};
use zeroize::Zeroizing;

use crate::cli::{CreateArgs, IdArg, PageArgs, UpdateArgs, VerifyArgs};
use crate::output::Report;

pub async fn create(service: &ApiKeyService, args: CreateArgs) -> Result<Report> {
    let new = NewApiKey {
        name: Some(args.name),
        description: args.description,
        is_active: !args.inactive,
        expires_at: args.expires_at,
        scopes: non_empty(args.scopes),
        ..NewApiKey::default()
    };
    let (entity, key) = service.create(new).await?;
    tracing::info!(id = %entity.id, key_id = %entity.key_id, "API key created");
    Ok(Report::Created { entity, key })
}

pub async fn list(service: &ApiKeyService, args: PageArgs) -> Result<Report> {
    Ok(Report::List(service.list(args.offset, args.limit).await?))
}

pub async fn get(service: &ApiKeyService, args: IdArg) -> Result<Report> {
    let entity = service.get(&args.id).await?;
    Ok(Report::Entity {
        headline: None,
        entity,
    })
}

pub async fn update(service: &ApiKeyService, args: UpdateArgs) -> Result<Report> {
    let change = ApiKeyUpdate {
        name: args.name,
        description: args.description,
        is_active: tri_state(args.active, args.inactive),
        scopes: args.scopes.map(non_empty),
        expires_at: args.expires_at,
        clear_expires: args.clear_expires,
    };
    let entity = service.update(&args.id, change).await?;
    Ok(Report::Entity {
        headline: Some("API key updated.".into()),
        entity,
    })
}

pub async fn delete(service: &ApiKeyService, args: IdArg) -> Result<Report> {
    let entity = service.delete(&args.id).await?;
    Ok(Report::Entity {
        headline: Some("API key deleted:".into()),
        entity,
    })
}

pub async fn activate(service: &ApiKeyService, args: IdArg) -> Result<Report> {
    let entity = service.activate(&args.id).await?;
    Ok(Report::Entity {
        headline: Some("API key active.".into()),
        entity,
    })
}

pub async fn deactivate(service: &ApiKeyService, args: IdArg) -> Result<Report> {
    let entity = service.deactivate(&args.id).await?;
    Ok(Report::Entity {
        headline: Some("API key inactive: it is refused from now on.".into()),
        entity,
    })
}

pub async fn verify(service: &ApiKeyService, args: VerifyArgs) -> Result<Report> {
    let key = if args.key == "-" {
        let mut buf = Zeroizing::new(String::new());
        std::io::stdin()
            .read_to_string(&mut buf)
            .context("cannot read the key from stdin")?;
        Zeroizing::new(buf.trim().to_owned())
    } else {
        Zeroizing::new(args.key)
    };
    let scopes = non_empty(args.scopes);
    let entity = service.verify(&key, &scopes).await?;
    Ok(Report::Entity {
        headline: Some("API key valid.".into()),
        entity: (*entity).clone(),
    })
}

/// `--scopes ''` parses as one empty string: it means "no scopes".
fn non_empty(scopes: Vec<String>) -> Vec<String> {
    scopes.into_iter().filter(|s| !s.is_empty()).collect()
}

/// `--active` / `--inactive` (clap makes them exclusive).
pub fn tri_state(yes: bool, no: bool) -> Option<bool> {
    match (yes, no) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}
