//! A pure Rust model of `scripts/limit.lua`: the same rules, the same keys ([`state_keys`]) and
//! stored values, on an in-memory map, with the time as a parameter. Tests replay sequences against
//! both and require identical replies; unit tests use it to check the rules themselves.
//!
//! TTLs are not modelled: the script's TTLs outlive the state's last relevant instant, and an
//! absent key means the same as an expired one (empty state).

use std::collections::BTreeMap;

use super::{
    checked_cost, encode_id, parse_decision, state_keys, Algorithm, Decision, Mode, Policy,
    RateLimitError,
};
use crate::core::command::Reply;

/// The store the model decides on: key → stored string, as Redis would hold them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    pub keys: BTreeMap<String, String>,
}

fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

fn ceil_div(a: i64, b: i64) -> i64 {
    -(-a).div_euclid(b)
}

/// The fields of a stored native state `<algorithm>:<L>:<W>:<fields>`, unless it was kept under
/// another algorithm or window (for token and gcra, another limit too): then there is none.
fn state_fields(stored: &str, algorithm: Algorithm, limit: i64, window: i64) -> Option<Vec<i64>> {
    let mut parts = stored.split(':');
    let (alg, l, w) = (parts.next()?, parts.next()?, parts.next()?);
    let bound_to_limit = matches!(algorithm, Algorithm::TokenBucket | Algorithm::Gcra);
    if alg != algorithm.as_str()
        || w.parse::<i64>().ok()? != window
        || (bound_to_limit && l.parse::<i64>().ok()? != limit)
    {
        return None;
    }
    parts.map(|f| f.parse().ok()).collect()
}

/// One policy's state during a decision (the script's table `p`).
struct State {
    algorithm: Algorithm,
    limit: i64,
    window: i64,
    now: i64,
    key: String,
    /// fixed and sliding: the window's number.
    index: i64,
    elapsed: i64,
    /// fixed: count; sliding: current-window count; token: level; gcra: debt.
    value: i64,
    /// sliding: previous-window count; token: refill timestamp.
    other: i64,
    retry: i64,
}

impl Model {
    pub fn new() -> Model {
        Model::default()
    }

    /// Decide exactly as the script would at `now_ms`, returning the reply it would give, for
    /// an identity without overrides or denial and native policies (the model's scope: the
    /// algorithms' arithmetic; the rest is tested on the script itself).
    pub fn reply(
        &mut self,
        policies: &[Policy],
        id: &str,
        cost: u64,
        mode: Mode,
        now_ms: u64,
    ) -> Result<Reply, RateLimitError> {
        let cost = checked_cost(policies, cost, mode)?;
        if let Some(p) = policies.iter().find(|p| !p.algorithm().is_native()) {
            return Err(RateLimitError::WrongKind(format!(
                "the model covers the native algorithms, not {}",
                p.algorithm()
            )));
        }
        if mode != Mode::Refund {
            if let Some(p) = policies.iter().find(|p| cost > p.limit()) {
                return Err(RateLimitError::CostExceedsLimit {
                    policy: p.name().to_owned(),
                    cost,
                    limit: p.limit(),
                });
            }
        }
        let cost = cost as i64;
        let tag = encode_id(id)?;
        let now = now_ms as i64;
        let mut states: Vec<State> = policies
            .iter()
            .map(|p| {
                let mut state = State {
                    algorithm: p.algorithm(),
                    limit: p.limit() as i64,
                    window: p.window_ms() as i64,
                    now,
                    key: state_keys(p, &tag, id, now_ms).remove(0),
                    index: 0,
                    elapsed: 0,
                    value: 0,
                    other: 0,
                    retry: 0,
                };
                self.load(&mut state);
                if mode == Mode::Reset {
                    self.keys.remove(&state.key);
                    self.load(&mut state);
                }
                state
            })
            .collect();

        let mut all_allowed = true;
        for (s, p) in states.iter_mut().zip(policies) {
            s.retry = if mode == Mode::Refund {
                0
            } else {
                check(s, cost)
            };
            all_allowed &= s.retry == 0 || p.shadow();
        }
        if cost > 0 {
            match mode {
                Mode::Consume if all_allowed => {
                    for s in states.iter_mut().filter(|s| s.retry == 0) {
                        self.consume(s, cost);
                    }
                }
                Mode::Refund => {
                    for s in &mut states {
                        let back = cost.min(s.limit);
                        self.refund(s, back);
                    }
                }
                _ => {}
            }
        }

        let mut reply = vec![
            Reply::Int(now),
            Reply::Int(all_allowed as i64),
            Reply::Int(0),
            Reply::Int(0),
        ];
        for s in &states {
            let (remaining, reset) = report(s);
            reply.extend([
                Reply::Int((s.retry == 0) as i64),
                Reply::Int(remaining),
                Reply::Int(reset),
                Reply::Int(s.retry),
                Reply::Int(s.limit),
                Reply::Int(s.window),
                Reply::Int(0),
            ]);
        }
        Ok(Reply::Array(reply))
    }

    /// [`Model::reply`], read as a [`Decision`].
    pub fn decide(
        &mut self,
        policies: &[Policy],
        id: &str,
        cost: u64,
        mode: Mode,
        now_ms: u64,
    ) -> Result<Decision, RateLimitError> {
        let reply = self.reply(policies, id, cost, mode, now_ms)?;
        parse_decision(policies, &reply)
    }

    fn load(&self, s: &mut State) {
        let (l, w, now) = (s.limit, s.window, s.now);
        let fields = self
            .keys
            .get(&s.key)
            .and_then(|stored| state_fields(stored, s.algorithm, l, w));
        let field = |i: usize| fields.as_ref().and_then(|f| f.get(i).copied());
        match s.algorithm {
            Algorithm::FixedWindow | Algorithm::SlidingWindow => {
                s.index = floor_div(now, w);
                s.elapsed = now - s.index * w;
                (s.value, s.other) = match field(0) {
                    Some(index) if index == s.index => (field(1).unwrap(), field(2).unwrap_or(0)),
                    // The window before: its current count is now the previous one.
                    Some(index)
                        if index == s.index - 1 && s.algorithm == Algorithm::SlidingWindow =>
                    {
                        (0, field(1).unwrap())
                    }
                    _ => (0, 0),
                };
            }
            Algorithm::TokenBucket => {
                s.value = l * w;
                s.other = now;
                if let (Some(level), Some(ts)) = (field(0), field(1)) {
                    let refill_ms = (now - ts).max(0).min(w);
                    s.value = (l * w).min(level + refill_ms * l);
                    s.other = ts.max(now);
                }
            }
            Algorithm::Gcra => {
                s.value = 0;
                if let (Some(tat_ms), Some(tat_rem)) = (field(0), field(1)) {
                    let ahead_ms = (tat_ms - now).min(w + 1);
                    s.value = (l * w).min((ahead_ms * l + tat_rem).max(0));
                }
            }
            Algorithm::Concurrency
            | Algorithm::UpstashFixed
            | Algorithm::UpstashSliding
            | Algorithm::UpstashToken => unreachable!(
                "the model covers the native algorithms (Model::reply refuses the others)"
            ),
        }
    }

    /// Write the state as the script does (`store_state`), or remove it when nothing is left.
    fn store(&mut self, s: &State) {
        let (l, w) = (s.limit, s.window);
        let fields = match s.algorithm {
            Algorithm::FixedWindow if s.value > 0 => vec![s.index, s.value],
            Algorithm::SlidingWindow if s.value + s.other > 0 => vec![s.index, s.value, s.other],
            Algorithm::TokenBucket if s.value < l * w => vec![s.value, s.other],
            Algorithm::Gcra if s.value > 0 => {
                let ahead_ms = floor_div(s.value, l);
                vec![s.now + ahead_ms, s.value - ahead_ms * l]
            }
            _ => {
                self.keys.remove(&s.key);
                return;
            }
        };
        let mut stored = format!("{}:{l}:{w}", s.algorithm.as_str());
        for field in fields {
            stored.push_str(&format!(":{field}"));
        }
        self.keys.insert(s.key.clone(), stored);
    }

    fn consume(&mut self, s: &mut State, cost: i64) {
        match s.algorithm {
            Algorithm::FixedWindow | Algorithm::SlidingWindow => s.value += cost,
            Algorithm::TokenBucket => s.value -= cost * s.window,
            Algorithm::Gcra => s.value += cost * s.window,
            Algorithm::Concurrency
            | Algorithm::UpstashFixed
            | Algorithm::UpstashSliding
            | Algorithm::UpstashToken => unreachable!(
                "the model covers the native algorithms (Model::reply refuses the others)"
            ),
        }
        self.store(s);
    }

    fn refund(&mut self, s: &mut State, cost: i64) {
        let (l, w) = (s.limit, s.window);
        let before = (s.value, s.other);
        match s.algorithm {
            Algorithm::FixedWindow | Algorithm::SlidingWindow => {
                let from_curr = cost.min(s.value);
                s.value -= from_curr;
                if s.algorithm == Algorithm::SlidingWindow {
                    s.other -= (cost - from_curr).min(s.other);
                }
            }
            Algorithm::TokenBucket => s.value = (l * w).min(s.value + cost * w),
            Algorithm::Gcra => s.value = (s.value - cost * w).max(0),
            Algorithm::Concurrency
            | Algorithm::UpstashFixed
            | Algorithm::UpstashSliding
            | Algorithm::UpstashToken => unreachable!(
                "the model covers the native algorithms (Model::reply refuses the others)"
            ),
        }
        // Like the script: nothing given back, nothing written.
        if (s.value, s.other) != before {
            self.store(s);
        }
    }
}

fn sliding_weight(s: &State, curr: i64) -> i64 {
    s.other * (s.window - s.elapsed) + curr * s.window
}

/// Time until `cost` is admitted (0: admitted now).
fn check(s: &State, cost: i64) -> i64 {
    let (l, w) = (s.limit, s.window);
    match s.algorithm {
        Algorithm::FixedWindow => {
            if s.value + cost <= l {
                0
            } else {
                w - s.elapsed
            }
        }
        Algorithm::SlidingWindow => {
            let excess = sliding_weight(s, s.value + cost) - l * w;
            if excess <= 0 {
                return 0;
            }
            let to_next = w - s.elapsed;
            if s.other > 0 {
                let wait = ceil_div(excess, s.other);
                if wait < to_next {
                    return wait;
                }
            }
            let excess_next = (s.value + cost - l) * w;
            if excess_next <= 0 {
                return to_next;
            }
            to_next + ceil_div(excess_next, s.value).min(w)
        }
        Algorithm::TokenBucket => {
            let missing = cost * w - s.value;
            if missing <= 0 {
                0
            } else {
                ceil_div(missing, l)
            }
        }
        Algorithm::Gcra => {
            let excess = s.value + cost * w - l * w;
            if excess <= 0 {
                0
            } else {
                ceil_div(excess, l)
            }
        }
        Algorithm::Concurrency
        | Algorithm::UpstashFixed
        | Algorithm::UpstashSliding
        | Algorithm::UpstashToken => {
            unreachable!("the model covers the native algorithms (Model::reply refuses the others)")
        }
    }
}

/// (remaining, reset_ms)
fn report(s: &State) -> (i64, i64) {
    let (l, w) = (s.limit, s.window);
    match s.algorithm {
        Algorithm::FixedWindow => {
            let reset = if s.value > 0 { w - s.elapsed } else { 0 };
            ((l - s.value).max(0), reset)
        }
        Algorithm::SlidingWindow => {
            let remaining = floor_div(l * w - sliding_weight(s, s.value), w).max(0);
            let reset = if s.value > 0 {
                2 * w - s.elapsed
            } else if s.other > 0 {
                w - s.elapsed
            } else {
                0
            };
            (remaining, reset)
        }
        Algorithm::TokenBucket => (floor_div(s.value, w), ceil_div(l * w - s.value, l)),
        Algorithm::Gcra => (floor_div(l * w - s.value, w), ceil_div(s.value, l)),
        Algorithm::Concurrency
        | Algorithm::UpstashFixed
        | Algorithm::UpstashSliding
        | Algorithm::UpstashToken => {
            unreachable!("the model covers the native algorithms (Model::reply refuses the others)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const T0: u64 = 1_700_000_000_000; // a multiple of 1 s, 1 min, 1 h

    fn run(model: &mut Model, p: &Policy, cost: u64, mode: Mode, now: u64) -> Decision {
        model
            .decide(std::slice::from_ref(p), "id", cost, mode, now)
            .unwrap()
    }

    fn consume(model: &mut Model, p: &Policy, now: u64) -> Decision {
        run(model, p, 1, Mode::Consume, now)
    }

    #[test]
    fn fixed_window_counts_per_calendar_window() {
        let p = Policy::fixed("f", 3, Duration::from_secs(10));
        let mut m = Model::new();
        let start = T0 + 4_000;
        for left in [2, 1, 0] {
            let d = consume(&mut m, &p, start);
            assert!(d.allowed);
            assert_eq!((d.remaining, d.reset_ms), (left, 6_000));
        }
        let d = consume(&mut m, &p, start + 1_000);
        assert!(!d.allowed);
        assert_eq!(
            (d.remaining, d.retry_after_ms, d.violated.len()),
            (0, 5_000, 1)
        );
        assert!(
            consume(&mut m, &p, T0 + 10_000).allowed,
            "the next window starts afresh"
        );
        // One key per policy: the new window's count replaced the old one's.
        assert_eq!(
            m.keys.get("rl:{id}:f:state").map(String::as_str),
            Some("fixed:3:10000:170000001:1")
        );
        assert_eq!(m.keys.len(), 1);
    }

    #[test]
    fn sliding_window_weights_the_previous_window() {
        let p = Policy::sliding("s", 10, Duration::from_secs(10));
        let mut m = Model::new();
        assert!(run(&mut m, &p, 10, Mode::Consume, T0 + 9_000).allowed);
        // 25% into the next window the previous 10 weigh 7.5: 2 more fit, a third does not.
        let d = run(&mut m, &p, 1, Mode::Peek, T0 + 12_500);
        assert_eq!(d.remaining, 2);
        assert!(run(&mut m, &p, 2, Mode::Consume, T0 + 12_500).allowed);
        let d = consume(&mut m, &p, T0 + 12_500);
        assert!(!d.allowed);
        // 10*(10000-e) + 3*10000 <= 100000 once e >= 3000: 500 ms later.
        assert_eq!(d.retry_after_ms, 500);
        assert!(!consume(&mut m, &p, T0 + 12_999).allowed);
        assert!(consume(&mut m, &p, T0 + 13_000).allowed);
        assert_eq!(d.reset_ms, 2 * 10_000 - 2_500);
    }

    #[test]
    fn sliding_retry_after_can_fall_in_the_next_window() {
        let p = Policy::sliding("s", 10, Duration::from_secs(10));
        let mut m = Model::new();
        run(&mut m, &p, 10, Mode::Consume, T0 + 1_000);
        let d = run(&mut m, &p, 4, Mode::Consume, T0 + 2_000);
        // Next window: 10*(10000-e) + 4*10000 <= 100000 once e >= 4000.
        assert_eq!(d.retry_after_ms, 8_000 + 4_000);
        assert!(!run(&mut m, &p, 4, Mode::Consume, T0 + 13_999).allowed);
        assert!(run(&mut m, &p, 4, Mode::Consume, T0 + 14_000).allowed);
        let full = run(&mut m, &p, 10, Mode::Peek, T0 + 15_000);
        assert_eq!(
            full.retry_after_ms,
            5_000 + 10_000,
            "a full-limit cost waits for an empty window"
        );
    }

    #[test]
    fn token_bucket_refills_continuously() {
        let p = Policy::token_bucket("t", 4, Duration::from_secs(1)); // one token per 250 ms
        let mut m = Model::new();
        assert!(run(&mut m, &p, 4, Mode::Consume, T0).allowed);
        let d = consume(&mut m, &p, T0 + 100);
        assert!(!d.allowed);
        assert_eq!((d.retry_after_ms, d.reset_ms), (150, 900));
        assert!(!consume(&mut m, &p, T0 + 249).allowed);
        let d = consume(&mut m, &p, T0 + 250);
        assert!(d.allowed);
        assert_eq!((d.remaining, d.reset_ms), (0, 1_000));
        assert_eq!(run(&mut m, &p, 1, Mode::Peek, T0 + 5_000).remaining, 4);
    }

    #[test]
    fn gcra_handles_fractional_emission_intervals_exactly() {
        let p = Policy::gcra("g", 3, Duration::from_secs(1)); // T = 333.33 ms
        let mut m = Model::new();
        for left in [2, 1, 0] {
            assert_eq!(consume(&mut m, &p, T0).remaining, left);
        }
        let d = consume(&mut m, &p, T0);
        assert_eq!(
            (d.allowed, d.retry_after_ms, d.reset_ms),
            (false, 334, 1_000)
        );
        assert!(!consume(&mut m, &p, T0 + 333).allowed);
        assert!(consume(&mut m, &p, T0 + 334).allowed);
        // Exactly 3 per second over a long run, not a 1000/333 rounding more.
        let admitted = (1..=30_000u64)
            .filter(|ms| consume(&mut m, &p, T0 + 334 + ms).allowed)
            .count();
        assert_eq!(admitted, 90);
    }

    #[test]
    fn token_and_gcra_admit_the_same_sequences() {
        let t = Policy::token_bucket("x", 7, Duration::from_millis(900));
        let g = Policy::gcra("x", 7, Duration::from_millis(900));
        let (mut mt, mut mg) = (Model::new(), Model::new());
        let mut now = T0;
        let mut seed = 7u64;
        for _ in 0..2_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            now += (seed >> 33) % 200;
            let cost = (seed >> 20) % 4;
            let mode = if (seed >> 10).is_multiple_of(5) {
                Mode::Refund
            } else {
                Mode::Consume
            };
            let a = run(&mut mt, &t, cost, mode, now);
            let b = run(&mut mg, &g, cost, mode, now);
            assert_eq!(
                (a.allowed, a.remaining, a.reset_ms, a.retry_after_ms),
                (b.allowed, b.remaining, b.reset_ms, b.retry_after_ms)
            );
        }
    }

    #[test]
    fn several_policies_are_all_or_nothing() {
        let ps = [
            Policy::fixed("a", 5, Duration::from_secs(60)),
            Policy::gcra("b", 2, Duration::from_secs(60)),
        ];
        let mut m = Model::new();
        for _ in 0..2 {
            assert!(m.decide(&ps, "id", 1, Mode::Consume, T0).unwrap().allowed);
        }
        let before = m.clone();
        let d = m.decide(&ps, "id", 1, Mode::Consume, T0).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.violated, ["b"]);
        assert_eq!(d.policies[0].remaining, 3, "a kept its 3: nothing consumed");
        assert!(d.policies[0].allowed);
        assert_eq!(m, before);
    }

    #[test]
    fn refunds_never_exceed_the_limit_and_peek_changes_nothing() {
        for p in [
            Policy::fixed("p", 5, Duration::from_secs(60)),
            Policy::sliding("p", 5, Duration::from_secs(60)),
            Policy::token_bucket("p", 5, Duration::from_secs(60)),
            Policy::gcra("p", 5, Duration::from_secs(60)),
        ] {
            let mut m = Model::new();
            run(&mut m, &p, 3, Mode::Consume, T0);
            let before = m.clone();
            let peek = run(&mut m, &p, 5, Mode::Peek, T0 + 1);
            assert!(!peek.allowed, "{p}");
            assert_eq!(m, before, "{p}: peek changed state");
            let d = run(&mut m, &p, 100, Mode::Refund, T0 + 1);
            assert!(d.allowed);
            assert_eq!((d.remaining, d.reset_ms), (5, 0), "{p}");
            assert!(m.keys.is_empty(), "{p}: an empty state is deleted");
            run(&mut m, &p, 4, Mode::Consume, T0 + 2);
            assert_eq!(run(&mut m, &p, 1, Mode::Reset, T0 + 3).remaining, 5, "{p}");
            assert!(m.keys.is_empty());
        }
    }
}
