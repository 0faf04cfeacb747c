//! The `JackalInit` controller's decisions, pure: from what was observed in the cluster, each
//! bootstrap step's phase, what to do now (clean up the seed, follow the registry spec, keep a
//! copy of the registry's image, seed the registry again) and the kstatus outcome. Tested without
//! a cluster.

use jackal_core::registry::ErrorCategory;
use jackal_crds::condition::{Condition, ConditionType};
use jackal_crds::init::{Architecture, BootstrapStep, JackalInitStatus, RegistryStatus, StepPhase};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The registry as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registry {
    /// No registry Deployment.
    Missing,
    /// It runs an image from the seed registry: `kubectl jackal init` is bootstrapping.
    Seeding,
    /// It runs its own image but has not rolled out (what it is waiting for).
    RollingOut(String),
    /// A pod of it cannot be placed on any node: what the scheduler says.
    Unschedulable(String),
    /// Its pods cannot pull its own image (node lost, image garbage-collected): what the node
    /// says.
    ImageUnavailable(String),
    /// It runs its own image, is available, and serves that image's manifest.
    SelfHosted,
    /// It is available on its own image but does not serve the image's manifest.
    NotServing,
    /// An external registry that serves the operator's image.
    External,
    /// An external registry that does not serve the operator's image (yet): what was tried.
    ExternalNotServing(String),
}

/// What the controller observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// `metadata.generation` of the `JackalInit`.
    pub generation: Option<i64>,
    /// The state Secret: `None` before bootstrap, `Some(Err)` when it is unreadable.
    pub state: Option<Result<String, String>>,
    /// The registry.
    pub registry: Registry,
    /// Whether the operator Deployment is available.
    pub operator_available: bool,
    /// Whether the webhook configuration is registered.
    pub webhook_registered: bool,
    /// Seed objects (injector pod, Service, ConfigMaps) still in the cluster.
    pub seed_objects: usize,
    /// Whether the operator's cache holds a copy of the registry's image.
    pub seed_cached: bool,
    /// Who else is seeding the registry now (holds the bootstrap Lease), if anyone.
    pub seeding_by: Option<String>,
    /// The architecture in use: the spec's, or the operator's own.
    pub architecture: Option<Architecture>,
}

/// What to do and what to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Delete the seed objects (the registry no longer needs them).
    pub clean_up: bool,
    /// Apply the registry's Deployment and Service from the spec (it changed).
    pub apply_registry: bool,
    /// Copy the registry's image into the operator's cache.
    pub keep_seed: bool,
    /// Seed the registry again from that copy: it cannot pull its own image.
    pub reseed: bool,
    /// Push that copy into the running registry: its pod restarted on an emptyDir and lost
    /// everything, its own image included.
    pub refill: bool,
    /// Each step: name, phase, message.
    pub steps: Vec<(&'static str, StepPhase, String)>,
    /// The outcome.
    pub outcome: Outcome,
}

/// The kstatus outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything is in place.
    Ready,
    /// Work is under way: reason and message.
    Progressing(&'static str, String),
    /// Nothing will change without help: reason and message.
    Stalled(&'static str, String),
}

/// Step names, in bootstrap order.
pub const STEPS: [&str; 6] = ["State", "Registry", "SeedCopy", "Operator", "Webhook", "Cleanup"];

/// Decides from `observed`; `observed_generation` is the generation the last status described.
pub fn plan(observed: &Observed, observed_generation: Option<i64>) -> Plan {
    use StepPhase::{Failed, Pending, Running, Succeeded};
    let mut steps = Vec::new();
    let state = match &observed.state {
        None => (
            Pending,
            "no cluster state yet: `kubectl jackal init` creates it".to_owned(),
        ),
        Some(Err(error)) => (Failed, error.clone()),
        Some(Ok(address)) => (Succeeded, format!("registry at {address}")),
    };
    steps.push(("State", state.0, state.1.clone()));
    let registry = match (&observed.registry, &observed.seeding_by) {
        (Registry::Missing, _) => (Pending, "no registry Deployment yet".to_owned()),
        (Registry::Seeding | Registry::ImageUnavailable(_), Some(holder)) => {
            (Running, format!("being seeded by {holder}"))
        }
        (Registry::Seeding, None) if observed.seed_cached => (
            Running,
            "seeding stopped half-way; finishing it from the operator's copy".to_owned(),
        ),
        (Registry::Seeding, None) => (
            Failed,
            "runs from the seed registry but nobody is seeding it (a bootstrap stopped half-way): run `kubectl jackal init` again".to_owned(),
        ),
        (Registry::RollingOut(detail), _) => (Running, format!("rolling out: {detail}")),
        (Registry::Unschedulable(detail), _) => (Running, format!("no node can run it: {detail}")),
        (Registry::ImageUnavailable(detail), None) if observed.seed_cached => (
            Running,
            format!("cannot pull its own image, seeding it again from the operator's copy: {detail}"),
        ),
        (Registry::ImageUnavailable(detail), None) => (
            Failed,
            format!(
                "cannot pull its own image and the operator holds no copy of it (run `kubectl jackal init` again): {detail}"
            ),
        ),
        (Registry::NotServing, _) if observed.seed_cached => (
            Running,
            "available but no longer holds its own image (a pod restarted on an emptyDir); pushing it back from the operator's copy".to_owned(),
        ),
        (Registry::NotServing, _) => (Running, "available but not serving its own image yet".to_owned()),
        (Registry::SelfHosted, _) => (Succeeded, "runs from its own image".to_owned()),
        (Registry::External, _) => (
            Succeeded,
            "the external registry serves the operator's image".to_owned(),
        ),
        (Registry::ExternalNotServing(detail), _) => (
            Running,
            format!("the external registry does not serve the operator's image: {detail}"),
        ),
    };
    steps.push(("Registry", registry.0, registry.1.clone()));
    let external = matches!(
        observed.registry,
        Registry::External | Registry::ExternalNotServing(_)
    );
    // In place: nothing more to do for the registry itself.
    let self_hosted = matches!(observed.registry, Registry::SelfHosted | Registry::External);
    let copy = match (observed.seed_cached, self_hosted) {
        _ if external => (
            Succeeded,
            "not needed: an external registry is never seeded".to_owned(),
        ),
        (true, _) => (
            Succeeded,
            "the operator holds a copy of the registry's image to seed it again".to_owned(),
        ),
        (false, true) => (
            Running,
            "copying the registry's image into the operator's cache".to_owned(),
        ),
        (false, false) => (
            Pending,
            "taken once the registry runs from its own image".to_owned(),
        ),
    };
    steps.push(("SeedCopy", copy.0, copy.1));
    let operator = if observed.operator_available {
        (Succeeded, "available".to_owned())
    } else {
        (Running, "not available yet".to_owned())
    };
    steps.push(("Operator", operator.0, operator.1));
    let webhook = if observed.webhook_registered {
        (Succeeded, "registered".to_owned())
    } else {
        (Running, "not registered yet".to_owned())
    };
    steps.push(("Webhook", webhook.0, webhook.1));
    let clean_up = self_hosted && observed.seed_objects > 0;
    let cleanup = match (self_hosted, observed.seed_objects) {
        (_, 0) => (Succeeded, "no seed objects left".to_owned()),
        (true, count) => (Running, format!("removing {count} seed objects")),
        (false, count) => (
            Pending,
            format!("{count} seed objects in use until the registry runs from its own image"),
        ),
    };
    steps.push(("Cleanup", cleanup.0, cleanup.1));

    let reseed = matches!(
        observed.registry,
        Registry::ImageUnavailable(_) | Registry::Seeding
    ) && observed.seed_cached
        && observed.seeding_by.is_none();
    let refill =
        observed.registry == Registry::NotServing && observed.seed_cached && observed.seeding_by.is_none();
    let outcome = if state.0 == Failed {
        Outcome::Stalled("InvalidState", state.1)
    } else if state.0 == Pending {
        Outcome::Progressing("WaitingForInit", state.1)
    } else if registry.0 == Failed && observed.registry == Registry::Seeding {
        Outcome::Stalled("SeedingAbandoned", registry.1)
    } else if registry.0 == Failed {
        Outcome::Stalled("RegistryImageUnavailable", registry.1)
    } else if observed.seeding_by.is_some() && !self_hosted {
        Outcome::Progressing("Seeding", registry.1)
    } else if reseed {
        Outcome::Progressing("Reseeding", registry.1)
    } else if refill {
        Outcome::Progressing("Refilling", registry.1)
    } else if matches!(observed.registry, Registry::Unschedulable(_)) {
        Outcome::Progressing("RegistryUnschedulable", registry.1)
    } else if !self_hosted {
        Outcome::Progressing("RegistryNotReady", registry.1)
    } else if let Some((name, _, message)) = steps.iter().find(|(_, phase, _)| *phase != Succeeded) {
        // Cleanup runs now: once it is done the next look finds everything in place.
        Outcome::Progressing(step_reason(name), format!("{name}: {message}"))
    } else {
        Outcome::Ready
    };
    Plan {
        clean_up,
        apply_registry: self_hosted && !external && observed_generation != observed.generation,
        keep_seed: self_hosted && !external && !observed.seed_cached,
        reseed,
        refill,
        steps,
        outcome,
    }
}

/// The outcome when doing what the plan asked failed: still progressing when waiting may help
/// (the reconcile is retried), stalled when it cannot; the error's category is the reason.
pub fn outcome_after_error(category: ErrorCategory, message: String) -> Outcome {
    if category.is_retryable() {
        Outcome::Progressing("RetryingAfterError", message)
    } else {
        Outcome::Stalled(category.reason(), message)
    }
}

fn step_reason(step: &str) -> &'static str {
    match step {
        "Operator" => "OperatorNotReady",
        "Webhook" => "WebhookNotRegistered",
        "SeedCopy" => "CopyingSeed",
        _ => "CleaningUp",
    }
}

/// The status `plan` describes, keeping each step's and condition's transition time while its
/// phase or status holds.
pub fn status(
    plan: &Plan,
    observed: &Observed,
    previous: Option<&JackalInitStatus>,
    now: &Time,
) -> JackalInitStatus {
    let steps = plan
        .steps
        .iter()
        .map(|(name, phase, message)| {
            let before = previous.and_then(|status| status.steps.iter().find(|step| step.name == *name));
            let since = before
                .filter(|step| step.phase == *phase)
                .and_then(|step| step.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            BootstrapStep {
                name: (*name).to_owned(),
                phase: *phase,
                message: Some(message.clone()),
                last_transition_time: Some(since),
            }
        })
        .collect();
    let (ready, reconciling, stalled) = match &plan.outcome {
        Outcome::Ready => (
            (
                "True",
                "Succeeded",
                "the registry, the operator and the webhook are in place".to_owned(),
            ),
            ("False", "Succeeded", String::new()),
            ("False", "Succeeded", String::new()),
        ),
        Outcome::Progressing(reason, message) => (
            ("False", *reason, message.clone()),
            ("True", *reason, message.clone()),
            ("False", *reason, String::new()),
        ),
        Outcome::Stalled(reason, message) => (
            ("False", *reason, message.clone()),
            ("False", *reason, String::new()),
            ("True", *reason, message.clone()),
        ),
    };
    let conditions = [
        (ConditionType::Ready, ready),
        (ConditionType::Reconciling, reconciling),
        (ConditionType::Stalled, stalled),
    ]
    .into_iter()
    .map(|(kind, (value, reason, message))| {
        let before = previous.and_then(|status| {
            status
                .conditions
                .iter()
                .find(|condition| condition.type_ == kind.as_str())
        });
        let since = before
            .filter(|condition| condition.status == value)
            .map(|condition| condition.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        Condition {
            type_: kind.as_str().to_owned(),
            status: value.to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation: observed.generation,
            last_transition_time: since,
        }
    })
    .collect();
    JackalInitStatus {
        observed_generation: observed.generation,
        conditions,
        architecture: observed.architecture,
        registry: match &observed.state {
            Some(Ok(address)) => Some(RegistryStatus {
                address: address.clone(),
            }),
            _ => None,
        },
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> Observed {
        Observed {
            generation: Some(3),
            state: Some(Ok("127.0.0.1:31999".to_owned())),
            registry: Registry::SelfHosted,
            operator_available: true,
            webhook_registered: true,
            seed_objects: 0,
            seed_cached: true,
            seeding_by: None,
            architecture: Some(Architecture::Amd64),
        }
    }

    fn time(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn everything_in_place_is_ready_and_does_nothing() {
        let plan = plan(&ready(), Some(3));
        assert_eq!(plan.outcome, Outcome::Ready);
        assert!(!plan.clean_up && !plan.apply_registry && !plan.keep_seed && !plan.reseed && !plan.refill);
        assert!(
            plan.steps
                .iter()
                .all(|(_, phase, _)| *phase == StepPhase::Succeeded)
        );
        assert_eq!(
            plan.steps.iter().map(|(name, _, _)| *name).collect::<Vec<_>>(),
            STEPS
        );
    }

    fn seeded_by_init(observed: Observed) -> Observed {
        Observed {
            registry: Registry::Seeding,
            seeding_by: Some("kubectl-jackal/workstation".to_owned()),
            ..observed
        }
    }

    #[test]
    fn a_new_generation_applies_the_registry_spec() {
        assert!(plan(&ready(), Some(2)).apply_registry);
        let seeding = seeded_by_init(ready());
        assert!(
            !plan(&seeding, Some(2)).apply_registry,
            "init drives a seeding registry"
        );
    }

    #[test]
    fn seed_objects_are_removed_only_once_the_registry_runs_from_its_own_image() {
        let leftovers = Observed {
            seed_objects: 4,
            ..ready()
        };
        let cleaning = plan(&leftovers, Some(3));
        assert!(cleaning.clean_up);
        assert_eq!(
            cleaning.outcome,
            Outcome::Progressing("CleaningUp", "Cleanup: removing 4 seed objects".to_owned())
        );
        let seeding = seeded_by_init(leftovers);
        let kept = plan(&seeding, Some(3));
        assert!(!kept.clean_up, "the seed serves the registry its image");
        assert!(!kept.reseed, "init is seeding it");
        assert_eq!(
            kept.outcome,
            Outcome::Progressing("Seeding", "being seeded by kubectl-jackal/workstation".to_owned())
        );
    }

    #[test]
    fn before_init_the_controller_waits_and_says_what_creates_the_state() {
        let fresh = Observed {
            state: None,
            registry: Registry::Missing,
            operator_available: false,
            webhook_registered: false,
            ..ready()
        };
        let Outcome::Progressing(reason, message) = plan(&fresh, None).outcome else {
            panic!("waiting is progress");
        };
        assert_eq!(reason, "WaitingForInit");
        assert!(message.contains("kubectl jackal init"), "{message}");
    }

    #[test]
    fn the_registry_image_is_kept_once_the_registry_runs_from_it() {
        let uncached = Observed {
            seed_cached: false,
            ..ready()
        };
        assert!(plan(&uncached, Some(3)).keep_seed);
        assert!(!plan(&ready(), Some(3)).keep_seed);
        let seeding = seeded_by_init(uncached);
        assert!(!plan(&seeding, Some(3)).keep_seed, "only its own image is kept");
    }

    #[test]
    fn a_registry_that_cannot_pull_its_image_is_seeded_again_from_the_copy() {
        let lost = Observed {
            registry: Registry::ImageUnavailable("ImagePullBackOff".to_owned()),
            ..ready()
        };
        let healing = plan(&lost, Some(3));
        assert!(healing.reseed);
        assert!(matches!(healing.outcome, Outcome::Progressing("Reseeding", _)));
        assert!(!healing.clean_up && !healing.keep_seed);
    }

    #[test]
    fn a_registry_that_lost_its_content_gets_its_own_image_back() {
        let emptied = Observed {
            registry: Registry::NotServing,
            ..ready()
        };
        let refilling = plan(&emptied, Some(3));
        assert!(refilling.refill && !refilling.reseed && !refilling.keep_seed);
        assert!(matches!(
            refilling.outcome,
            Outcome::Progressing("Refilling", message) if message.contains("operator's copy")
        ));
        let uncached = Observed {
            seed_cached: false,
            ..emptied
        };
        assert!(!plan(&uncached, Some(3)).refill);
    }

    #[test]
    fn an_external_registry_is_never_seeded_nor_copied() {
        let external = Observed {
            registry: Registry::External,
            seed_cached: false,
            ..ready()
        };
        let plan_now = plan(&external, Some(2));
        assert_eq!(plan_now.outcome, Outcome::Ready);
        assert!(!plan_now.keep_seed && !plan_now.reseed && !plan_now.apply_registry);
        let unreachable = Observed {
            registry: Registry::ExternalNotServing("connection refused".to_owned()),
            ..external
        };
        let waiting = plan(&unreachable, Some(3));
        assert!(matches!(
            waiting.outcome,
            Outcome::Progressing("RegistryNotReady", message) if message.contains("connection refused")
        ));
    }

    #[test]
    fn a_registry_no_node_can_run_says_so() {
        let cordoned = Observed {
            registry: Registry::Unschedulable(
                "pod jackal-registry-x: 0/1 nodes are available: 1 node(s) were unschedulable.".to_owned(),
            ),
            ..ready()
        };
        let waiting = plan(&cordoned, Some(3));
        assert!(!waiting.reseed && !waiting.clean_up);
        assert!(matches!(
            waiting.outcome,
            Outcome::Progressing("RegistryUnschedulable", message)
                if message.contains("no node can run it") && message.contains("unschedulable")
        ));
    }

    #[test]
    fn seeding_someone_else_does_is_left_to_them() {
        let lost = Observed {
            registry: Registry::ImageUnavailable("ImagePullBackOff".to_owned()),
            seeding_by: Some("kubectl-jackal/workstation".to_owned()),
            ..ready()
        };
        let waiting = plan(&lost, Some(3));
        assert!(!waiting.reseed);
        assert!(matches!(waiting.outcome, Outcome::Progressing("Seeding", _)));
    }

    #[test]
    fn seeding_stopped_half_way_is_finished_from_the_copy_or_stalls_without_one() {
        // The operator (or init) was killed mid-seed: the Lease expired, the registry still runs
        // from the seed.
        let abandoned = Observed {
            registry: Registry::Seeding,
            seed_objects: 5,
            ..ready()
        };
        let resumed = plan(&abandoned, Some(3));
        assert!(resumed.reseed && !resumed.clean_up);
        assert!(matches!(resumed.outcome, Outcome::Progressing("Reseeding", _)));
        let without_copy = Observed {
            seed_cached: false,
            ..abandoned
        };
        let stalled = plan(&without_copy, Some(3));
        assert!(!stalled.reseed);
        assert!(matches!(
            stalled.outcome,
            Outcome::Stalled("SeedingAbandoned", message) if message.contains("kubectl jackal init")
        ));
    }

    #[test]
    fn a_registry_that_cannot_pull_its_image_without_a_copy_or_a_bad_state_stalls() {
        let lost = Observed {
            registry: Registry::ImageUnavailable("ImagePullBackOff".to_owned()),
            seed_cached: false,
            ..ready()
        };
        let stalled = plan(&lost, Some(3));
        assert!(!stalled.reseed);
        assert!(matches!(
            stalled.outcome,
            Outcome::Stalled("RegistryImageUnavailable", message)
                if message.contains("ImagePullBackOff") && message.contains("kubectl jackal init")
        ));
        let broken = Observed {
            state: Some(Err(
                "Secret jackal-state key state is not a valid state".to_owned()
            )),
            ..ready()
        };
        assert!(matches!(
            plan(&broken, Some(3)).outcome,
            Outcome::Stalled("InvalidState", _)
        ));
    }

    #[test]
    fn a_corrupt_chunk_stalls_naming_the_chunk_and_its_digests() {
        use jackal_core::bootstrap::steps::StepError;
        use jackal_core::oci::Digest;
        use jackal_core::registry::Categorize;
        let error = StepError::CorruptChunk {
            chunk: "jackal-payload-0003".to_owned(),
            expected: Digest::of(b"written"),
            found: Digest::of(b"tampered"),
            payload: Digest::of(b"payload"),
        };
        let Outcome::Stalled(reason, message) = outcome_after_error(error.category(), error.to_string())
        else {
            panic!("a corrupt chunk does not heal by waiting");
        };
        assert_eq!(reason, ErrorCategory::Integrity.reason());
        for named in [
            "jackal-payload-0003".to_owned(),
            Digest::of(b"written").to_string(),
            Digest::of(b"tampered").to_string(),
        ] {
            assert!(message.contains(&named), "{message} names {named}");
        }
        assert!(matches!(
            outcome_after_error(ErrorCategory::Transient, "timed out".to_owned()),
            Outcome::Progressing("RetryingAfterError", _)
        ));
    }

    #[test]
    fn status_keeps_transition_times_while_nothing_changes() {
        let observed = ready();
        let first = status(&plan(&observed, None), &observed, None, &time(100));
        assert_eq!(first.observed_generation, Some(3));
        assert_eq!(first.registry.as_ref().unwrap().address, "127.0.0.1:31999");
        assert_eq!(first.architecture, Some(Architecture::Amd64));
        let ready_condition = |status: &JackalInitStatus| {
            status
                .conditions
                .iter()
                .find(|condition| condition.type_ == "Ready")
                .cloned()
                .unwrap()
        };
        assert_eq!(ready_condition(&first).status, "True");
        let again = status(&plan(&observed, Some(3)), &observed, Some(&first), &time(200));
        assert_eq!(ready_condition(&again).last_transition_time, time(100));
        assert_eq!(again.steps[0].last_transition_time, Some(time(100)));

        let lost = Observed {
            operator_available: false,
            ..observed.clone()
        };
        let later = status(&plan(&lost, Some(3)), &lost, Some(&again), &time(300));
        let condition = ready_condition(&later);
        assert_eq!(
            (condition.status.as_str(), condition.last_transition_time),
            ("False", time(300))
        );
        assert_eq!(condition.reason, "OperatorNotReady");
        let reconciling = later
            .conditions
            .iter()
            .find(|c| c.type_ == "Reconciling")
            .unwrap();
        assert_eq!(reconciling.status, "True");
    }
}
