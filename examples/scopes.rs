//! The service alone: one key with scope `read`, one with `write`; a
//! verification that requires `write` accepts the second and refuses the first.
//!
//! Run with `cargo run --example scopes`.

use keygate::{ApiKeyService, Error, InMemoryRepository, NewApiKey, Pepper};

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Set API_KEY_PEPPER in every real environment; the placeholder warns.
    let pepper = Pepper::from_env();
    if pepper.is_placeholder() {
        eprintln!("warning: API_KEY_PEPPER is not set; using the insecure placeholder pepper");
    }
    let service = ApiKeyService::builder(InMemoryRepository::new())
        .pepper(pepper)
        .build()?;

    let (_, read_key) = service
        .create(NewApiKey::named("read-key").with_scopes(["read"]))
        .await?;
    let (_, write_key) = service
        .create(NewApiKey::named("write-key").with_scopes(["write"]))
        .await?;

    println!("Key with scope 'read':  {}", read_key.expose());
    println!("Key with scope 'write': {}", write_key.expose());

    let verified = service.verify(write_key.expose(), &["write"]).await?;
    println!(
        "Verified the 'write' key for required scopes [\"write\"]: {} ({})",
        verified.name.as_deref().unwrap_or("-"),
        verified.id
    );

    match service.verify(read_key.expose(), &["write"]).await {
        Err(e @ Error::InvalidScopes { .. }) => {
            println!("Refused the 'read' key for required scopes [\"write\"]: {e}");
        }
        other => panic!("the read key must be refused, got {other:?}"),
    }
    Ok(())
}
