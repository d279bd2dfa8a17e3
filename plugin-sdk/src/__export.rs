//! Glue used by [`export_sensor!`](crate::export_sensor) and
//! [`export_notifier!`](crate::export_notifier): converts between the SDK's
//! types and the generated bindings. Not a public API.
#![allow(missing_docs)]

use crate::bindings::{notifier as n, provider as p, sensor as s};
use crate::types::*;
use crate::{Notifier, Provider, Sensor};
use std::any::Any;
use std::cell::RefCell;
use std::time::Duration;

macro_rules! convert_common {
    ($m:ident) => {
        pub(crate) mod $m {
            use super::*;
            use crate::bindings::$m::outpost::plugin::plugin_types as w;

            pub fn info(i: PluginInfo) -> w::PluginInfo {
                w::PluginInfo {
                    name: i.name,
                    version: i.version,
                    kind: match i.kind {
                        PluginKind::Sensor => w::PluginKind::Sensor,
                        PluginKind::Notifier => w::PluginKind::Notifier,
                        // Not expressible in this world's `plugin-kind`.
                        PluginKind::Provider => w::PluginKind::Sensor,
                    },
                    description: i.description,
                    config: i
                        .config
                        .into_iter()
                        .map(|f| w::ConfigField {
                            name: f.name,
                            type_: f.ty,
                            required: f.required,
                            default: f.default,
                            description: f.description,
                        })
                        .collect(),
                }
            }

            pub fn config_error(e: ConfigError) -> w::ConfigError {
                w::ConfigError {
                    field: e.field,
                    message: e.message,
                }
            }
        }
    };
}
convert_common!(sensor);
convert_common!(notifier);
convert_common!(provider);

pub fn sensor_info<T: Sensor>() -> s::outpost::plugin::plugin_types::PluginInfo {
    sensor::info(T::info())
}

fn parse_and_validate_sensor<T: Sensor>(config: &str) -> Result<T::Config, ConfigError> {
    let cfg = crate::parse_config::<T::Config>(config)?;
    T::validate(&cfg)?;
    Ok(cfg)
}

pub fn sensor_validate<T: Sensor>(
    config: &str,
) -> Result<(), s::outpost::plugin::plugin_types::ConfigError> {
    parse_and_validate_sensor::<T>(config)
        .map(|_| ())
        .map_err(sensor::config_error)
}

thread_local! {
    /// The last configuration a check parsed and validated, with its JSON
    /// text. A reused instance serves one sensor, whose configuration
    /// rarely changes: parsing it (and compiling its regular expressions)
    /// on every check was a fifth of the guest's work.
    static LAST_CONFIG: RefCell<Option<(String, Box<dyn Any>)>> = const { RefCell::new(None) };
}

pub fn sensor_check<T: Sensor>(
    config: &str,
    timeout_ms: u32,
) -> s::outpost::plugin::plugin_types::CheckResult {
    use s::outpost::plugin::plugin_types as w;
    let ctx = CheckContext::new(Duration::from_millis(timeout_ms.into()));
    let r = LAST_CONFIG.with_borrow_mut(|last| {
        let cached = matches!(last, Some((text, cfg)) if text == config && cfg.is::<T::Config>());
        if !cached {
            *last = None;
            match parse_and_validate_sensor::<T>(config) {
                Ok(cfg) => *last = Some((config.to_owned(), Box::new(cfg))),
                Err(e) => return CheckResult::error(format!("invalid configuration: {e}")),
            }
        }
        match last
            .as_ref()
            .and_then(|(_, cfg)| cfg.downcast_ref::<T::Config>())
        {
            Some(cfg) => T::check(cfg, &ctx),
            None => CheckResult::error("configuration cache lost its value"),
        }
    });
    w::CheckResult {
        status: match r.status {
            Status::Ok => w::Status::Ok,
            Status::Warn => w::Status::Warn,
            Status::Fail => w::Status::Fail,
            Status::Error => w::Status::Error,
        },
        message: r.message,
        latency_ms: r.latency_ms,
        metrics: r
            .metrics
            .into_iter()
            .map(|(name, value)| w::Metric { name, value })
            .collect(),
        details: r.details.map(|d| d.0),
    }
}

pub fn notifier_info<T: Notifier>() -> n::outpost::plugin::plugin_types::PluginInfo {
    notifier::info(T::info())
}

fn parse_and_validate_notifier<T: Notifier>(config: &str) -> Result<T::Config, ConfigError> {
    let cfg = crate::parse_config::<T::Config>(config)?;
    T::validate(&cfg)?;
    Ok(cfg)
}

pub fn notifier_validate<T: Notifier>(
    config: &str,
) -> Result<(), n::outpost::plugin::plugin_types::ConfigError> {
    parse_and_validate_notifier::<T>(config)
        .map(|_| ())
        .map_err(notifier::config_error)
}

pub fn notifier_notify<T: Notifier>(
    config: &str,
    alert: n::outpost::plugin::plugin_types::Alert,
    timeout_ms: u32,
) -> Result<(), n::outpost::plugin::plugin_types::DeliveryError> {
    use n::outpost::plugin::plugin_types as w;
    let ctx = CheckContext::new(Duration::from_millis(timeout_ms.into()));
    let to_wit = |e: DeliveryError| w::DeliveryError {
        message: e.message,
        retry_after_ms: e.retry_after_ms,
        permanent: e.permanent,
    };
    let cfg = parse_and_validate_notifier::<T>(config).map_err(|e| {
        to_wit(DeliveryError::permanent(format!(
            "invalid configuration: {e}"
        )))
    })?;
    let alert = Alert {
        idempotency_key: alert.idempotency_key,
        incident_id: alert.incident_id,
        event: match alert.event {
            w::AlertEvent::Opened => AlertEvent::Opened,
            w::AlertEvent::Escalated => AlertEvent::Escalated,
            w::AlertEvent::Reminder => AlertEvent::Reminder,
            w::AlertEvent::Acknowledged => AlertEvent::Acknowledged,
            w::AlertEvent::Resolved => AlertEvent::Resolved,
        },
        agent: alert.agent,
        target: alert.target,
        target_kind: alert.target_kind,
        old_state: alert.old_state,
        new_state: alert.new_state,
        message: alert.message,
        started_at_ms: alert.started_at_ms,
        event_at_ms: alert.event_at_ms,
        level: alert.level,
        ack_url: alert.ack_url,
    };
    T::notify(cfg, alert, &ctx).map_err(to_wit)
}

pub fn provider_info<T: Provider>() -> p::exports::outpost::plugin::provider::ProviderInfo {
    let i = provider::info(T::info());
    p::exports::outpost::plugin::provider::ProviderInfo {
        name: i.name,
        version: i.version,
        description: i.description,
        kinds: T::info().kinds,
        config: i.config,
    }
}

fn parse_and_validate_provider<T: Provider>(config: &str) -> Result<T::Config, ConfigError> {
    let cfg = crate::parse_config::<T::Config>(config)?;
    T::validate(&cfg)?;
    Ok(cfg)
}

pub fn provider_validate<T: Provider>(
    config: &str,
) -> Result<(), p::outpost::plugin::plugin_types::ConfigError> {
    parse_and_validate_provider::<T>(config)
        .map(|_| ())
        .map_err(provider::config_error)
}

pub fn provider_discover<T: Provider>(
    config: &str,
    cursor: Option<&str>,
    timeout_ms: u32,
) -> Result<
    p::exports::outpost::plugin::provider::Discovery,
    p::exports::outpost::plugin::provider::DiscoveryError,
> {
    use p::exports::outpost::plugin::provider as w;
    let to_wit = |e: DiscoveryError| w::DiscoveryError {
        kind: match e.kind {
            DiscoveryErrorKind::Unavailable => w::DiscoveryErrorKind::Unavailable,
            DiscoveryErrorKind::Denied => w::DiscoveryErrorKind::Denied,
            DiscoveryErrorKind::BadAnswer => w::DiscoveryErrorKind::BadAnswer,
            DiscoveryErrorKind::Config => w::DiscoveryErrorKind::Config,
        },
        message: e.message,
    };
    let ctx = CheckContext::new(Duration::from_millis(timeout_ms.into()));
    let cfg = parse_and_validate_provider::<T>(config).map_err(|e| {
        to_wit(DiscoveryError::new(
            DiscoveryErrorKind::Config,
            format!("invalid configuration: {e}"),
        ))
    })?;
    let d = T::discover(&cfg, cursor, &ctx).map_err(to_wit)?;
    Ok(w::Discovery {
        objects: d.objects.map(|list| {
            list.into_iter()
                .map(|o| w::DiscoveredObject {
                    kind: o.kind,
                    id: o.id,
                    name: o.name,
                    labels: o.labels,
                    attributes: o.attributes,
                    parents: o.parents,
                })
                .collect()
        }),
        cursor: d.cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    static VALIDATIONS: AtomicU32 = AtomicU32::new(0);

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        word: String,
    }

    /// Echoes its configured word; counts how often a configuration is
    /// parsed and validated.
    struct Echo;

    impl Sensor for Echo {
        type Config = Cfg;
        fn info() -> PluginInfo {
            PluginInfo::sensor("echo", "0", "echoes")
        }
        fn validate(c: &Cfg) -> Result<(), ConfigError> {
            VALIDATIONS.fetch_add(1, Ordering::SeqCst);
            if c.word.is_empty() {
                return Err(ConfigError::new("word", "must not be empty"));
            }
            Ok(())
        }
        fn check(c: &Cfg, _ctx: &CheckContext) -> CheckResult {
            CheckResult::ok(c.word.clone())
        }
    }

    #[test]
    fn a_configuration_is_parsed_once_while_it_stays_the_same() {
        let check = |cfg: &str| sensor_check::<Echo>(cfg, 1000).message;
        let before = VALIDATIONS.load(Ordering::SeqCst);
        assert_eq!(check(r#"{"word":"a"}"#), "a");
        assert_eq!(check(r#"{"word":"a"}"#), "a");
        assert_eq!(VALIDATIONS.load(Ordering::SeqCst) - before, 1);
        // Another text is parsed again and replaces the cached one.
        assert_eq!(check(r#"{"word":"b"}"#), "b");
        assert_eq!(VALIDATIONS.load(Ordering::SeqCst) - before, 2);
        // An invalid one is reported every time and is not cached...
        for _ in 0..2 {
            let msg = check(r#"{"word":""}"#);
            assert!(
                msg.contains("word") && msg.contains("must not be empty"),
                "{msg}"
            );
        }
        assert_eq!(VALIDATIONS.load(Ordering::SeqCst) - before, 4);
        // ...nor does it leave the previous one in place.
        assert_eq!(check(r#"{"word":"b"}"#), "b");
        assert_eq!(VALIDATIONS.load(Ordering::SeqCst) - before, 5);
        assert!(check(r#"{"word":1}"#).starts_with("invalid configuration"));
    }
}
