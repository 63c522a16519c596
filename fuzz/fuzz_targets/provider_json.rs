//! The provider JSON the admin API and `idgate ap` take. Properties: any
//! body is refused or becomes a provider that meets every rule: a valid ID,
//! a name, a provider URL that parses as an absolute https (or loopback)
//! URL without query or fragment, valid email domains; and such a provider
//! survives a round trip through its JSON unchanged.
#![no_main]

use idgate::providers::validate::{self, Rules};
use idgate::providers::{Provider, ProviderChange};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(change) = serde_json::from_slice::<ProviderChange>(data) else {
        return;
    };
    let id = change
        .ids
        .as_ref()
        .map(|i| i.provider_id.clone())
        .unwrap_or_else(|| "fuzz-provider".into());
    let provider = change.into_new(&id, "2026-12-06T00:00:00.000000Z");
    if validate::provider(&provider, Rules::default()).is_err() {
        return;
    }
    assert!(validate::provider_id(provider.id()).is_ok());
    let url = url::Url::parse(&provider.configuration.oidc.provider_url).expect("a URL");
    assert!(url.query().is_none() && url.fragment().is_none());
    assert!(url.scheme() == "https" || url.scheme() == "http");
    for domain in &provider.allowed_email_domains {
        assert!(validate::email_domain(domain).is_ok());
    }
    let json = serde_json::to_vec(&provider).unwrap();
    let back: Provider = serde_json::from_slice(&json).unwrap();
    assert_eq!(back, provider);
});
