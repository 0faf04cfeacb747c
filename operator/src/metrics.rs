//! The operator's Prometheus metrics, in one registry served on the admin port. Admission metrics
//! count every decision by kind, operation and outcome, and time it.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of one admission decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    /// Object kind (`Pod`, `OCIRepository`, …).
    pub kind: String,
    /// `CREATE`, `UPDATE`, …
    pub operation: String,
    /// `mutated` (patched), `unchanged`, `warned` (allowed with warnings: something was left as
    /// written, the rest possibly patched), `denied` (only the webhook's own misconfiguration) or
    /// `invalid` (not an admission review).
    pub outcome: &'static str,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Object kind.
    pub kind: String,
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    /// Admission decisions.
    pub admissions: Family<AdmissionLabels, Counter>,
    /// Time from request body to response body, per kind.
    pub admission_duration: Family<KindLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("jackal");
        let admissions = Family::<AdmissionLabels, Counter>::default();
        registry.register(
            "admissions",
            "Admission decisions by kind, operation and outcome",
            admissions.clone(),
        );
        let admission_duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            // 50 µs to ~1.6 s.
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.000_05, 2.0, 16,
            ))
        });
        registry.register(
            "admission_duration_seconds",
            "Time spent deciding an admission request",
            admission_duration.clone(),
        );
        Self {
            registry,
            admissions,
            admission_duration,
        }
    }
}

impl Metrics {
    /// The registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
