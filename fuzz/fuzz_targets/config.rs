//! The configuration parser: every variable at once, any text. Never a panic; a configuration
//! that parses answers every question the API asks of it.
#![no_main]

use arbitrary::Arbitrary;
use edgecount::api::Config;
use libfuzzer_sys::fuzz_target;

const NAMES: &[&str] = &[
    "EDGECOUNT_RATE_LIMITS",
    "EDGECOUNT_TIERS",
    "EDGECOUNT_GATEWAY_ROUTES",
    "EDGECOUNT_GATEWAY_POLICIES",
    "EDGECOUNT_GATEWAY_KEY",
    "EDGECOUNT_ALLOWED_ORIGINS",
    "EDGECOUNT_FAIL_MODE",
    "EDGECOUNT_ABUSE_LIMIT",
    "EDGECOUNT_ABUSE_WINDOW",
    "EDGECOUNT_ORIGIN",
    "EDGECOUNT_DEV_CLIENT_IP",
];

#[derive(Arbitrary, Debug)]
struct Input {
    values: Vec<(u8, String)>,
    path: String,
    list: String,
}

fuzz_target!(|input: Input| {
    let lookup = |name: &str| {
        input
            .values
            .iter()
            .find(|(n, _)| NAMES[usize::from(*n) % NAMES.len()] == name)
            .map(|(_, v)| v.clone())
    };
    let Ok(config) = Config::from_lookup(lookup) else {
        return;
    };
    for policy in config.rate_limits.iter() {
        config
            .rate_limits
            .select(policy.name())
            .expect("a configured policy is selectable by its name");
    }
    if let Some(list) = config.gateway_routes.policies_for(&input.path) {
        config
            .rate_limits
            .select(list)
            .expect("gateway routes name configured policies");
    }
    let _ = config.rate_limits.select(&input.list);
    let _ = format!("{config:?}");
});
