//! Budget policies: spend per period for a scope, alert thresholds, and blocking at 100 %.
//!
//! Spend is counted from the usage records: when policies change (or the server starts) it is
//! summed from the usage database, and every priced query adds its cost under one lock, so
//! concurrent queries never lose an addition. A `BLOCK` policy refuses queries once the spend
//! has reached the amount; queries already in flight at that moment still finish, so the spend
//! can exceed the amount by at most their cost.
//!
//! With Redis (`--redis-url`), replicas share each period's spend: every [`SHARE_EVERY`] a replica
//! adds what it spent since to the period's total in Redis and takes the total back
//! ([`Budgets::share`]).
//! A replica so learns of the others' spend within that interval; the bound above grows by what
//! the other replicas spend in one interval.

use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use modelgate_core::period::Period;
use modelgate_store::{SpendFilter, Store, UsageDb};
use modelgate_wire::{BudgetPolicy, BudgetPolicyInput, BudgetSpend};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::policy::shared::{SharedCounters, SpendShare};
use crate::policy::{Caller, Target};

/// Who budgets count besides endpoints: the members of a group, and the tokens with a budget of
/// their own.
pub struct Principals<'a> {
    /// The names of a group's members (nested groups included).
    pub members_of: &'a (dyn Fn(&str) -> Vec<String> + Sync),
    /// Every token with a budget: its id and budget.
    pub token_budgets: Vec<(&'a str, &'a modelgate_wire::TokenBudget)>,
}

/// How often replicas share their budget spend through Redis.
pub const SHARE_EVERY: Duration = Duration::from_secs(1);

/// Document kind of budget policies.
pub const KIND: &str = "budget_policy";
/// Default alert thresholds, in percent.
pub const DEFAULT_THRESHOLDS: [f64; 3] = [50.0, 80.0, 100.0];

/// Checks a policy's settings; the error names the field.
pub fn validate(p: &BudgetPolicyInput) -> Result<Period, ApiError> {
    if let Some(problem) = modelgate_core::names::endpoint_name_problem(&p.name) {
        return Err(ApiError::invalid("name", problem));
    }
    let period = Period::from_str(&p.period).map_err(|e| ApiError::invalid("period", e))?;
    if !(p.amount_usd.is_finite() && p.amount_usd > 0.0) {
        return Err(ApiError::invalid("amount_usd", format!("must be a positive number, got {}", p.amount_usd)));
    }
    if p.alert_thresholds.as_ref().is_some_and(|t| t.len() > 20) {
        return Err(ApiError::invalid("alert_thresholds", "at most 20 thresholds are allowed"));
    }
    for (i, t) in p.alert_thresholds.iter().flatten().enumerate() {
        if !(t.is_finite() && *t > 0.0 && *t <= 1000.0) {
            return Err(ApiError::invalid(
                &format!("alert_thresholds[{i}]"),
                format!("must be a percentage in (0, 1000], got {t}"),
            ));
        }
    }
    match p.action.as_deref() {
        None | Some("ALERT") | Some("BLOCK") => {}
        Some(other) => return Err(ApiError::invalid("action", format!("'{other}' is not ALERT or BLOCK"))),
    }
    let s = &p.scope;
    let set = [
        s.endpoint.is_some(),
        s.tag.is_some(),
        s.usage_context.is_some(),
        s.user.is_some(),
        s.group.is_some(),
        s.service_principal.is_some(),
    ]
    .into_iter()
    .filter(|b| *b)
    .count();
    if set > 1 {
        return Err(ApiError::invalid(
            "scope",
            "set at most one of endpoint, tag, usage_context, user, group, service_principal",
        ));
    }
    for (field, name) in
        [("scope.user", &s.user), ("scope.group", &s.group), ("scope.service_principal", &s.service_principal)]
    {
        if let Some(p) = name.as_deref().and_then(|n| modelgate_core::names::text_problem(n, 255, false)) {
            return Err(ApiError::invalid(field, p));
        }
        if name.as_deref() == Some("") {
            return Err(ApiError::invalid(field, "must not be empty"));
        }
    }
    for (field, kv) in [("scope.tag", &s.tag), ("scope.usage_context", &s.usage_context)] {
        if let Some(kv) = kv
            && (kv.key.is_empty() || kv.key.contains(['"', '\\']))
        {
            return Err(ApiError::invalid(&format!("{field}.key"), "must be non-empty, without quotes or backslashes"));
        }
        if let Some(kv) = kv {
            for (part, text) in [("key", &kv.key), ("value", &kv.value)] {
                if let Some(problem) = modelgate_core::names::text_problem(text, 255, false) {
                    return Err(ApiError::invalid(&format!("{field}.{part}"), problem));
                }
            }
        }
    }
    Ok(period)
}

struct Tracked {
    /// The policy's id, or `token:` and the token's id for a token's own budget.
    id: String,
    /// The token whose own budget this is; `None` for a budget policy.
    token: Option<String>,
    input: BudgetPolicyInput,
    period: Period,
    start: i64,
    end: i64,
    spent: f64,
    /// Spend added here and not yet shared with the other replicas (part of `spent`).
    unshared: f64,
}

impl Tracked {
    fn applies(&self, ep: Target<'_>, caller: Option<Caller<'_>>, usage_context: Option<&Map<String, Value>>) -> bool {
        if let Some(token) = &self.token {
            return caller.is_some_and(|c| c.token_id == token);
        }
        let s = &self.input.scope;
        let named = |n: &Option<String>| n.is_some() && caller.is_some_and(|c| n.as_deref() == Some(c.name));
        ep.budget_policy_id == Some(self.id.as_str())
            || named(&s.user)
            || named(&s.service_principal)
            || s.group.as_ref().is_some_and(|g| caller.is_some_and(|c| c.groups.contains(g)))
            || s.endpoint.as_deref() == Some(ep.name)
            || s.tag.as_ref().is_some_and(|kv| ep.tags.get(&kv.key) == Some(&kv.value))
            || s.usage_context.as_ref().is_some_and(|kv| {
                usage_context.and_then(|c| c.get(&kv.key)).and_then(Value::as_str) == Some(kv.value.as_str())
            })
    }

    /// Moves to the period holding `now`; a new period starts from zero.
    fn roll(&mut self, now: i64) {
        if now >= self.end || now < self.start {
            (self.start, self.end) = self.period.bounds(now);
            self.spent = 0.0;
            self.unshared = 0.0;
        }
    }

    fn blocks(&self) -> bool {
        self.input.action.as_deref() == Some("BLOCK")
    }

    fn view(&self, endpoints: Vec<String>) -> BudgetPolicy {
        BudgetPolicy {
            policy_id: self.id.clone(),
            input: self.input.clone(),
            endpoints,
            spend: Some(BudgetSpend {
                period_start: self.start,
                period_end: self.end,
                spent_usd: self.spent,
                percent: self.spent / self.input.amount_usd * 100.0,
            }),
        }
    }
}

/// The policies and their spend.
#[derive(Default)]
pub struct Budgets {
    tracked: Mutex<Vec<Tracked>>,
}

fn endpoints_of(endpoints: &[Target<'_>], id: &str) -> Vec<String> {
    let mut v: Vec<String> =
        endpoints.iter().filter(|e| e.budget_policy_id == Some(id)).map(|e| e.name.to_string()).collect();
    v.sort();
    v
}

impl Budgets {
    /// Reads every policy and every token budget, and sums their spend of the current period
    /// from the usage records.
    pub async fn reload(
        &self,
        store: &dyn Store,
        usage: &UsageDb,
        endpoints: &[Target<'_>],
        principals: &Principals<'_>,
    ) -> Result<(), ApiError> {
        let now = modelgate_core::now_ms();
        let mut fresh = Vec::new();
        for d in store.list_documents(KIND).await? {
            let Ok(input) = serde_json::from_str::<BudgetPolicyInput>(&d.body) else {
                tracing::warn!(policy = %d.name, "unreadable budget policy skipped");
                continue;
            };
            let Ok(period) = Period::from_str(&input.period) else { continue };
            let (start, end) = period.bounds(now);
            let mut filter = SpendFilter { endpoints: endpoints_of(endpoints, &d.id), ..Default::default() };
            filter.endpoints.extend(input.scope.endpoint.clone());
            filter.tag = input.scope.tag.as_ref().map(|kv| (kv.key.clone(), kv.value.clone()));
            filter.usage_context = input.scope.usage_context.as_ref().map(|kv| (kv.key.clone(), kv.value.clone()));
            filter.requesters.extend(input.scope.user.iter().chain(&input.scope.service_principal).cloned());
            if let Some(g) = &input.scope.group {
                filter.requesters.extend((principals.members_of)(g));
            }
            let spent = usage.spend(&filter, start).await?;
            fresh.push(Tracked { id: d.id, token: None, input, period, start, end, spent, unshared: 0.0 });
        }
        for &(token_id, budget) in &principals.token_budgets {
            let Ok(period) = Period::from_str(&budget.period) else { continue };
            let (start, end) = period.bounds(now);
            let filter = SpendFilter { token_id: Some(token_id.to_string()), ..Default::default() };
            let spent = usage.spend(&filter, start).await?;
            let input = BudgetPolicyInput {
                name: format!("token {token_id}"),
                scope: Default::default(),
                period: budget.period.clone(),
                amount_usd: budget.amount_usd,
                alert_thresholds: None,
                action: budget.action.clone(),
            };
            let token = Some(token_id.to_string());
            fresh.push(Tracked {
                id: format!("token:{token_id}"),
                token,
                input,
                period,
                start,
                end,
                spent,
                unshared: 0.0,
            });
        }
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        // The records of the latest queries may still be on their way to the database, and the
        // spend not yet shared through Redis must still go: both carry over within a period.
        for t in &mut fresh {
            if let Some(old) =
                tracked.iter().find(|o| o.id == t.id && o.start == t.start && o.input.scope == t.input.scope)
            {
                t.spent = t.spent.max(old.spent);
                t.unshared = old.unshared;
            }
        }
        *tracked = fresh;
        Ok(())
    }

    /// Refuses a query a `BLOCK` policy (or its token's own `BLOCK` budget) has no money left
    /// for: 429 naming it.
    pub fn check(
        &self,
        ep: Target<'_>,
        caller: Caller<'_>,
        usage_context: Option<&Map<String, Value>>,
    ) -> Result<(), ApiError> {
        let now = modelgate_core::now_ms();
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        for t in tracked.iter_mut().filter(|t| t.blocks()) {
            t.roll(now);
            if t.spent >= t.input.amount_usd && t.applies(ep, Some(caller), usage_context) {
                let wait = ((t.end - now) / 1000).max(1) as u64;
                let what = match &t.token {
                    Some(id) => format!("The budget of token {id}"),
                    None => format!("Budget policy '{}'", t.input.name),
                };
                return Err(ApiError::BudgetExhausted {
                    message: format!(
                        "{what} is exhausted: ${:.4} spent of ${:.2} this {}. Queries resume when the {} ends, in {}.",
                        t.spent,
                        t.input.amount_usd,
                        t.input.period,
                        t.input.period,
                        humantime::format_duration(std::time::Duration::from_secs(wait))
                    ),
                    retry_after: wait,
                });
            }
        }
        Ok(())
    }

    /// Adds the cost of a finished query (of `caller`, if a caller made it) to every policy it
    /// falls under and to its token's budget.
    pub fn add(
        &self,
        ep: Target<'_>,
        caller: Option<Caller<'_>>,
        usage_context: Option<&Map<String, Value>>,
        cost: f64,
    ) {
        if cost <= 0.0 {
            return;
        }
        let now = modelgate_core::now_ms();
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        for t in tracked.iter_mut() {
            if t.applies(ep, caller, usage_context) {
                t.roll(now);
                t.spent += cost;
                t.unshared += cost;
            }
        }
    }

    /// Every policy with its current spend, by name.
    pub fn list(&self, endpoints: &[Target<'_>]) -> Vec<BudgetPolicy> {
        let now = modelgate_core::now_ms();
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<BudgetPolicy> = tracked
            .iter_mut()
            .filter(|t| t.token.is_none())
            .map(|t| {
                t.roll(now);
                t.view(endpoints_of(endpoints, &t.id))
            })
            .collect();
        out.sort_by(|a, b| a.input.name.cmp(&b.input.name));
        out
    }

    /// Adds this replica's unshared spend to the totals in Redis and takes the totals back (the
    /// others' spend included). Nothing changes when Redis does not answer: the spend stays
    /// unshared and goes with the next sync.
    pub async fn share(&self, redis: &SharedCounters) {
        let now = modelgate_core::now_ms();
        let shares: Vec<SpendShare> = {
            let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
            tracked
                .iter_mut()
                .map(|t| {
                    t.roll(now);
                    SpendShare {
                        policy: t.id.clone(),
                        period_start: t.start,
                        ttl_secs: ((t.end - t.start) / 1000).max(0) as u64 + 86_400,
                        seed: t.spent - t.unshared,
                        delta: t.unshared,
                    }
                })
                .collect()
        };
        let Some(totals) = redis.add_spend(&shares).await else { return };
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        for (share, total) in shares.iter().zip(totals) {
            // The policy may have been reloaded or rolled over meanwhile: only the same period.
            if let Some(t) = tracked.iter_mut().find(|t| t.id == share.policy && t.start == share.period_start) {
                t.unshared = (t.unshared - share.delta).max(0.0);
                t.spent = total + t.unshared;
            }
        }
    }

    /// Every token's own budget with its current spend, as a policy named `token <id>` whose id
    /// is `token:<id>` (for alerts; the policy listing leaves them out).
    pub fn token_budgets(&self) -> Vec<BudgetPolicy> {
        let now = modelgate_core::now_ms();
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        tracked
            .iter_mut()
            .filter(|t| t.token.is_some())
            .map(|t| {
                t.roll(now);
                t.view(Vec::new())
            })
            .collect()
    }

    /// The current period's spend against a token's own budget; `None` if it has none.
    pub fn token_spent(&self, token_id: &str) -> Option<f64> {
        let now = modelgate_core::now_ms();
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        tracked.iter_mut().find(|t| t.token.as_deref() == Some(token_id)).map(|t| {
            t.roll(now);
            t.spent
        })
    }

    /// Whether a policy with this id exists.
    pub fn exists(&self, id: &str) -> bool {
        self.tracked.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|t| t.id == id)
    }
}
