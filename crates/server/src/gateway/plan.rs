//! The plan of a query: which served entities to try, in which order, and whether a failure
//! moves on to the next one. Pure: it sees only each entity's share, and draws from the random
//! generator it is given.

use crate::snapshot::LiveEntity;

/// What the plan knows of a served entity.
#[derive(Debug, Clone, Copy)]
pub(super) struct Share {
    /// Its share of the traffic split, 0 to 100.
    pub traffic_percentage: i64,
    /// Its backend-pool tier (lower first), if the endpoint uses pools.
    pub priority: Option<i64>,
    /// Its share within the tier.
    pub weight: i64,
}

impl Share {
    pub(super) fn of(e: &LiveEntity) -> Share {
        Share { traffic_percentage: e.traffic_percentage, priority: e.priority, weight: e.weight }
    }
}

/// The entities to try (indexes into the endpoint's entities), in order.
#[derive(Debug, PartialEq)]
pub(super) struct Plan {
    /// The order of the attempts.
    pub order: Vec<usize>,
    /// Whether a failure moves on to the next entity (else the first is retried).
    pub failover: bool,
    /// Without fail-over: the other entities of the traffic split (weighted order), which take
    /// the query if the first one's circuit breaker refuses it. A breaker moves traffic within
    /// the split; it does not fail a query over.
    pub detour: Vec<usize>,
}

/// A position drawn at random in proportion to `weights` (a negative weight counts as 0); the
/// first when every weight is 0.
pub(super) fn weighted_pick(weights: &[i64], rng: &mut fastrand::Rng) -> usize {
    let total: i64 = weights.iter().map(|w| (*w).max(0)).sum();
    if total <= 0 {
        return 0;
    }
    let mut ticket = rng.i64(0..total);
    weights
        .iter()
        .position(|w| {
            ticket -= (*w).max(0);
            ticket < 0
        })
        .unwrap_or(0)
}

/// `indices` in the order of weighted random draws without replacement (weight 0 goes last).
fn weighted_order(shares: &[Share], mut indices: Vec<usize>, rng: &mut fastrand::Rng) -> Vec<usize> {
    let mut out = Vec::with_capacity(indices.len());
    while !indices.is_empty() {
        let weights: Vec<i64> = indices.iter().map(|i| shares.get(*i).map_or(0, |s| s.weight)).collect();
        out.push(indices.remove(weighted_pick(&weights, rng)));
    }
    out
}

/// The plan for entities with `shares`. Backend pools (any `priority` set) go tier by tier,
/// weighted within a tier, and always fail over. Otherwise the traffic split picks the first entity
/// and, with `fallback`, the others follow in `served_entities` order. No entity, no attempt.
pub(super) fn plan(shares: &[Share], fallback: bool, rng: &mut fastrand::Rng) -> Plan {
    let n = shares.len();
    if n == 0 {
        return Plan { order: Vec::new(), failover: false, detour: Vec::new() };
    }
    if shares.iter().any(|s| s.priority.is_some()) {
        let mut tiers: std::collections::BTreeMap<i64, Vec<usize>> = std::collections::BTreeMap::new();
        for (i, s) in shares.iter().enumerate() {
            tiers.entry(s.priority.unwrap_or(i64::MAX)).or_default().push(i);
        }
        let order = tiers.into_values().flat_map(|tier| weighted_order(shares, tier, rng)).collect();
        return Plan { order, failover: true, detour: Vec::new() };
    }
    let split: Vec<i64> = shares.iter().map(|s| s.traffic_percentage).collect();
    let first = weighted_pick(&split, rng);
    if fallback {
        Plan { order: (0..n).map(|k| (first + k) % n).collect(), failover: true, detour: Vec::new() }
    } else {
        let others = (0..n).filter(|i| *i != first && shares.get(*i).is_some_and(|s| s.traffic_percentage > 0));
        let by_share: Vec<Share> = shares.iter().map(|s| Share { weight: s.traffic_percentage, ..*s }).collect();
        Plan { order: vec![first], failover: false, detour: weighted_order(&by_share, others.collect(), rng) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pcts: &[i64]) -> Vec<Share> {
        pcts.iter().map(|p| Share { traffic_percentage: *p, priority: None, weight: 1 }).collect()
    }

    fn pool(tiers: &[(i64, i64)]) -> Vec<Share> {
        tiers.iter().map(|(p, w)| Share { traffic_percentage: 0, priority: Some(*p), weight: *w }).collect()
    }

    #[test]
    fn no_entity_no_attempt() {
        assert_eq!(
            plan(&[], true, &mut fastrand::Rng::with_seed(1)),
            Plan { order: vec![], failover: false, detour: vec![] }
        );
    }

    #[test]
    fn the_traffic_split_picks_in_proportion() {
        let mut rng = fastrand::Rng::with_seed(7);
        let shares = split(&[70, 30, 0]);
        let mut counts = [0usize; 3];
        for _ in 0..10_000 {
            let p = plan(&shares, false, &mut rng);
            assert!(!p.failover);
            counts[p.order[0]] += 1;
        }
        assert!((6_700..7_300).contains(&counts[0]), "{counts:?}");
        assert!((2_700..3_300).contains(&counts[1]), "{counts:?}");
        assert_eq!(counts[2], 0, "a 0 % entity gets nothing");
    }

    #[test]
    fn the_detour_is_the_rest_of_the_split_without_zero_shares() {
        let mut rng = fastrand::Rng::with_seed(9);
        for _ in 0..200 {
            let p = plan(&split(&[50, 50, 0]), false, &mut rng);
            let other = 1 - p.order[0];
            assert_eq!(p.detour, vec![other], "{p:?}");
        }
        assert_eq!(plan(&split(&[100]), false, &mut rng).detour, Vec::<usize>::new());
    }

    #[test]
    fn fallback_tries_the_others_in_order_after_the_pick() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..100 {
            let p = plan(&split(&[0, 100, 0]), true, &mut rng);
            assert_eq!(p, Plan { order: vec![1, 2, 0], failover: true, detour: vec![] });
        }
    }

    #[test]
    fn pools_go_tier_by_tier_weighted_within_a_tier() {
        let mut rng = fastrand::Rng::with_seed(11);
        let shares = pool(&[(2, 1), (1, 3), (1, 1), (1, 0)]);
        let mut first = [0usize; 4];
        for _ in 0..4_000 {
            let p = plan(&shares, false, &mut rng);
            assert!(p.failover, "pools always fail over");
            assert_eq!(p.order.len(), 4);
            assert_eq!(p.order[3], 0, "the second tier comes last");
            assert_eq!(p.order[2], 3, "weight 0 goes last within its tier");
            first[p.order[0]] += 1;
        }
        assert!(
            (2_800..3_200).contains(&first[1]) && (800..1_200).contains(&first[2]),
            "3:1 within the tier: {first:?}"
        );
    }

    #[test]
    fn weights_that_are_all_zero_or_negative_pick_the_first() {
        let mut rng = fastrand::Rng::with_seed(5);
        assert_eq!(weighted_pick(&[0, 0], &mut rng), 0);
        assert_eq!(weighted_pick(&[-5, 0], &mut rng), 0);
        assert!((0..200).all(|_| weighted_pick(&[-5, 2], &mut rng) == 1));
    }
}
