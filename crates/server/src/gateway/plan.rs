//! The plan of a query: which served entities to try, in which order. Pure; random draws come
//! from `fastrand`.

use crate::snapshot::{LiveEndpoint, LiveEntity};

/// A position drawn at random in proportion to `weights` (negative counts as 0); the first when
/// every weight is 0.
pub(super) fn weighted_pick(weights: &[i64]) -> usize {
    let total: i64 = weights.iter().map(|w| (*w).max(0)).sum();
    if total <= 0 {
        return 0;
    }
    let mut ticket = fastrand::i64(0..total);
    weights
        .iter()
        .position(|w| {
            ticket -= (*w).max(0);
            ticket < 0
        })
        .unwrap_or(0)
}

/// Orders `indices` by weighted random draws without replacement (weight 0 goes last).
pub(super) fn weighted_order(entities: &[LiveEntity], mut indices: Vec<usize>) -> Vec<usize> {
    let mut out = Vec::with_capacity(indices.len());
    while !indices.is_empty() {
        let weights: Vec<i64> = indices.iter().map(|i| entities.get(*i).map_or(0, |e| e.weight)).collect();
        out.push(indices.remove(weighted_pick(&weights)));
    }
    out
}

/// The order in which the served entities are tried for one request, and whether a failure moves
/// on to the next one. Backend pools (any `priority` set) go tier by tier, weighted within a tier,
/// and always fail over. Otherwise the traffic split picks the first entity and, with
/// `fallback_config.enabled`, the others follow in `served_entities` order.
pub(super) fn plan(ep: &LiveEndpoint) -> (Vec<usize>, bool) {
    let n = ep.entities.len();
    if n == 0 {
        return (Vec::new(), false);
    }
    if ep.entities.iter().any(|e| e.priority.is_some()) {
        let mut tiers: std::collections::BTreeMap<i64, Vec<usize>> = std::collections::BTreeMap::new();
        for (i, e) in ep.entities.iter().enumerate() {
            tiers.entry(e.priority.unwrap_or(i64::MAX)).or_default().push(i);
        }
        let order = tiers.into_values().flat_map(|tier| weighted_order(&ep.entities, tier)).collect();
        return (order, true);
    }
    let shares: Vec<i64> = ep.entities.iter().map(|e| e.traffic_percentage).collect();
    let first = weighted_pick(&shares);
    let fallback = ep.ai_gateway.as_ref().and_then(|g| g.fallback_config.as_ref()).is_some_and(|f| f.enabled);
    if fallback { ((0..n).map(|k| (first + k) % n).collect(), true) } else { (vec![first], false) }
}
