//! Kubernetes objects in, allocator inputs out: turning a Service into a
//! [`ServiceRequest`] (families, requested IPs, annotations, sharing keys) with an error a
//! person can act on when it is malformed, and pools into [`PoolConfig`]s.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_crds::IPAddressPool;
use ferrolb_crds::addresses::Family;
use ferrolb_crds::annotations::{self, Found};
use ferrolb_crds::selector::Selectors;
use ferrolb_crds::validate::PoolCheck;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use thiserror::Error;

pub use ferrolb_crds::documents::{Inputs, LoadError};

use crate::allocator::{Families, PoolAllocation, PoolConfig, Port, ServiceKey, ServiceRequest};

/// The key of a Service; a Service without a namespace is in `default`.
pub fn service_key(svc: &Service) -> ServiceKey {
    ServiceKey {
        namespace: svc.namespace().unwrap_or_else(|| "default".into()),
        name: svc.name_any(),
    }
}

pub use ferrolb_crds::service::ingress_ips;

/// The allocator's view of the valid pools.
pub fn pool_configs(check: &PoolCheck, pools: &[IPAddressPool]) -> Vec<PoolConfig> {
    pools
        .iter()
        .filter_map(|p| {
            let parsed = check.valid.get(&p.name_any())?;
            let allocation = p.spec.service_allocation.as_ref().map(|sa| PoolAllocation {
                priority: sa.priority.unwrap_or(0),
                namespaces: sa.namespaces.iter().cloned().collect(),
                // Already checked by `check_pools`; a failure here cannot happen, and
                // would only widen nothing (empty = no restriction is avoided below).
                namespace_selectors: Selectors::parse(&sa.namespace_selectors).unwrap_or_default(),
                service_selectors: Selectors::parse(&sa.service_selectors).unwrap_or_default(),
            });
            Some(PoolConfig {
                name: parsed.name.clone(),
                ranges: parsed.ranges.clone(),
                auto_assign: p.spec.auto_assign,
                avoid_buggy_ips: p.spec.avoid_buggy_ips,
                allocation,
            })
        })
        .collect()
}

/// Whether the controller handles this Service at all.
pub fn is_handled(svc: &Service, lb_class: Option<&str>) -> bool {
    let Some(spec) = &svc.spec else { return false };
    spec.type_.as_deref() == Some("LoadBalancer") && spec.load_balancer_class.as_deref() == lb_class
}

/// Why a handled Service cannot be turned into a request.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("spec.loadBalancerIP and the {0} annotation are both set: keep one")]
    BothRequests(String),
    #[error("{key}: {value:?} is not an IP address")]
    BadIp { key: String, value: String },
    #[error("{key} lists {count} addresses: give one, or one IPv4 and one IPv6")]
    TooManyIps { key: String, count: usize },
    #[error("{key} lists two addresses of the same family")]
    SameFamily { key: String },
    #[error("requested {requested} but the service is {wanted}")]
    WrongFamily { requested: String, wanted: String },
    #[error("ipFamilyPolicy RequireDualStack needs two cluster IPs, the service has {0}")]
    NotEnoughClusterIps(usize),
    #[error("unknown ipFamilyPolicy {0:?}")]
    BadPolicy(String),
    #[error("unknown IP family {0:?} in spec.ipFamilies")]
    BadFamily(String),
}

/// A Service as the allocator sees it, plus the MetalLB annotation keys it used (for a
/// hint Event). `None` when the Service has no cluster IP (headless): it gets nothing.
pub struct Request {
    pub request: ServiceRequest,
    pub aliases: Vec<(String, String)>,
}

/// Builds the allocator's request for a handled Service.
pub fn service_request(
    svc: &Service,
    namespace_labels: &BTreeMap<String, String>,
) -> Result<Option<Request>, RequestError> {
    let empty = BTreeMap::new();
    let ann = svc.metadata.annotations.as_ref().unwrap_or(&empty);
    let spec = svc.spec.clone().unwrap_or_default();
    let mut aliases = Vec::new();
    let mut read = |key: &str| -> Option<String> {
        let Found {
            value,
            key: found,
            alias,
        } = annotations::lookup(ann, key)?;
        if alias {
            aliases.push((found, key.to_string()));
        }
        Some(value.trim().to_string())
    };
    let pool = read(annotations::ADDRESS_POOL).filter(|p| !p.is_empty());
    let sharing_key = read(annotations::ALLOW_SHARED_IP).filter(|k| !k.is_empty());
    let requested_ann = read(annotations::LOAD_BALANCER_IPS);

    let Some(families) = families(&spec)? else {
        return Ok(None);
    };

    let spec_ip = spec
        .load_balancer_ip
        .clone()
        .filter(|s| !s.trim().is_empty());
    let requested_ips = match (spec_ip, requested_ann.filter(|s| !s.is_empty())) {
        (Some(_), Some(_)) => {
            return Err(RequestError::BothRequests(
                annotations::LOAD_BALANCER_IPS.into(),
            ));
        }
        (Some(ip), None) => parse_ips("spec.loadBalancerIP", &ip)?,
        (None, Some(list)) => parse_ips(annotations::LOAD_BALANCER_IPS, &list)?,
        (None, None) => Vec::new(),
    };
    check_requested_families(&requested_ips, families)?;

    let backend_key = if spec.external_traffic_policy.as_deref() == Some("Local") {
        spec.selector
            .as_ref()
            .map(|s| {
                s.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    } else {
        String::new()
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(Port {
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                port: u16::try_from(p.port).ok()?,
            })
        })
        .collect();
    let current = ingress_ips(svc);
    Ok(Some(Request {
        request: ServiceRequest {
            key: service_key(svc),
            labels: svc.labels().clone(),
            namespace_labels: namespace_labels.clone(),
            families,
            requested_ips,
            pool,
            sharing_key,
            backend_key,
            ports,
            current,
        },
        aliases,
    }))
}

fn parse_family(s: &str) -> Result<Family, RequestError> {
    match s {
        "IPv4" => Ok(Family::V4),
        "IPv6" => Ok(Family::V6),
        other => Err(RequestError::BadFamily(other.into())),
    }
}

/// Families from `spec.clusterIPs` when the API server filled them, else from
/// `spec.ipFamilies` / `ipFamilyPolicy` (hand-written manifests given to the planner).
fn families(
    spec: &k8s_openapi::api::core::v1::ServiceSpec,
) -> Result<Option<Families>, RequestError> {
    let cluster_ips: Vec<IpAddr> = match (&spec.cluster_ips, &spec.cluster_ip) {
        (Some(ips), _) if !ips.is_empty() => ips.iter().filter_map(|i| i.parse().ok()).collect(),
        (_, Some(ip)) => ip.parse().ok().into_iter().collect(),
        _ => Vec::new(),
    };
    let headless = spec.cluster_ip.as_deref() == Some("None");
    if headless {
        return Ok(None);
    }
    let declared: Vec<Family> = spec
        .ip_families
        .iter()
        .flatten()
        .map(|f| parse_family(f))
        .collect::<Result<_, _>>()?;
    let primary = cluster_ips
        .first()
        .map(Family::of)
        .or(declared.first().copied())
        .unwrap_or(Family::V4);
    let known = if cluster_ips.is_empty() {
        declared.len()
    } else {
        cluster_ips.len()
    };
    let policy = spec.ip_family_policy.as_deref().unwrap_or("SingleStack");
    Ok(Some(match policy {
        "SingleStack" => Families::Single(primary),
        "PreferDualStack" if !cluster_ips.is_empty() && cluster_ips.len() < 2 => {
            Families::Single(primary)
        }
        "PreferDualStack" => Families::PreferDual { primary },
        "RequireDualStack" if !cluster_ips.is_empty() && known < 2 => {
            return Err(RequestError::NotEnoughClusterIps(known));
        }
        "RequireDualStack" => Families::RequireDual,
        other => return Err(RequestError::BadPolicy(other.into())),
    }))
}

fn parse_ips(key: &str, list: &str) -> Result<Vec<IpAddr>, RequestError> {
    let ips = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpAddr>().map_err(|_| RequestError::BadIp {
                key: key.into(),
                value: s.into(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    match ips.as_slice() {
        [a, b] if Family::of(a) == Family::of(b) => {
            Err(RequestError::SameFamily { key: key.into() })
        }
        [_, _, _, ..] => Err(RequestError::TooManyIps {
            key: key.into(),
            count: ips.len(),
        }),
        _ => Ok(ips),
    }
}

fn check_requested_families(ips: &[IpAddr], families: Families) -> Result<(), RequestError> {
    let describe = |ips: &[IpAddr]| {
        ips.iter()
            .map(|i| format!("{} {i}", Family::of(i)))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let ok = match (ips, families) {
        ([], _) => true,
        ([ip], Families::Single(f)) => Family::of(ip) == f,
        ([_], Families::PreferDual { .. }) => true,
        ([_, _], Families::PreferDual { .. } | Families::RequireDual) => true,
        _ => false,
    };
    if ok {
        return Ok(());
    }
    let wanted = match families {
        Families::Single(f) => format!("single-stack {f}"),
        Families::PreferDual { .. } => "PreferDualStack".into(),
        Families::RequireDual => "RequireDualStack (one IPv4 and one IPv6 needed)".into(),
    };
    Err(RequestError::WrongFamily {
        requested: describe(ips),
        wanted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(yaml: &str) -> Service {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn req(yaml: &str) -> Result<Option<Request>, RequestError> {
        service_request(&svc(yaml), &BTreeMap::new())
    }

    const BASE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n";

    #[test]
    fn families_from_cluster_ips_and_policy() {
        let r = req(&format!(
            "{BASE}spec: {{type: LoadBalancer, clusterIPs: ['fd00::1']}}"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(r.request.families, Families::Single(Family::V6));
        let r = req(&format!(
            "{BASE}spec: {{type: LoadBalancer, ipFamilyPolicy: RequireDualStack, clusterIPs: ['10.0.0.1', 'fd00::1']}}"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(r.request.families, Families::RequireDual);
        let e = req(&format!(
            "{BASE}spec: {{type: LoadBalancer, ipFamilyPolicy: RequireDualStack, clusterIPs: ['10.0.0.1']}}"
        ));
        assert_eq!(e.err(), Some(RequestError::NotEnoughClusterIps(1)));
        let r = req(&format!("{BASE}spec: {{type: LoadBalancer, ipFamilyPolicy: PreferDualStack, ipFamilies: [IPv6, IPv4]}}"))
            .unwrap()
            .unwrap();
        assert_eq!(
            r.request.families,
            Families::PreferDual {
                primary: Family::V6
            }
        );
        assert!(
            req(&format!(
                "{BASE}spec: {{type: LoadBalancer, clusterIP: None}}"
            ))
            .unwrap()
            .is_none()
        );
    }

    #[test]
    fn requested_ips_and_aliases() {
        let r = req(&format!(
            "{BASE}  annotations: {{metallb.universe.tf/loadBalancerIPs: '198.51.100.5', metallb.io/allow-shared-ip: k}}\nspec: {{type: LoadBalancer}}"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            r.request.requested_ips,
            vec!["198.51.100.5".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(r.request.sharing_key.as_deref(), Some("k"));
        assert_eq!(r.aliases.len(), 2);
        let e = req(&format!(
            "{BASE}  annotations: {{ferrolb.io/loadBalancerIPs: '198.51.100.5'}}\nspec: {{type: LoadBalancer, loadBalancerIP: 198.51.100.6}}"
        ));
        assert!(matches!(e, Err(RequestError::BothRequests(_))));
        let e = req(&format!(
            "{BASE}  annotations: {{ferrolb.io/loadBalancerIPs: '198.51.100.5,198.51.100.6'}}\nspec: {{type: LoadBalancer}}"
        ));
        assert!(matches!(e, Err(RequestError::SameFamily { .. })));
        let e = req(&format!(
            "{BASE}  annotations: {{ferrolb.io/loadBalancerIPs: 'banana'}}\nspec: {{type: LoadBalancer}}"
        ));
        assert_eq!(
            e.err().unwrap().to_string(),
            "ferrolb.io/loadBalancerIPs: \"banana\" is not an IP address"
        );
        let e = req(&format!(
            "{BASE}spec: {{type: LoadBalancer, loadBalancerIP: '2001:db8::5'}}"
        ));
        assert!(matches!(e, Err(RequestError::WrongFamily { .. })));
    }

    #[test]
    fn backend_key_and_ports() {
        let r = req(&format!(
            "{BASE}spec: {{type: LoadBalancer, externalTrafficPolicy: Local, selector: {{b: '2', a: '1'}}, ports: [{{port: 53, protocol: UDP}}, {{port: 80}}]}}"
        ))
        .unwrap()
        .unwrap();
        assert_eq!(r.request.backend_key, "a=1,b=2");
        assert_eq!(
            r.request.ports,
            vec![
                Port {
                    protocol: "UDP".into(),
                    port: 53
                },
                Port {
                    protocol: "TCP".into(),
                    port: 80
                }
            ]
        );
    }

    #[test]
    fn class_filter() {
        let s = svc(&format!(
            "{BASE}spec: {{type: LoadBalancer, loadBalancerClass: ferrolb.io/lb}}"
        ));
        assert!(!is_handled(&s, None));
        assert!(is_handled(&s, Some("ferrolb.io/lb")));
        assert!(!is_handled(
            &svc(&format!("{BASE}spec: {{type: ClusterIP}}")),
            None
        ));
    }

    #[test]
    fn documents_of_both_groups() {
        let mut inputs = Inputs::default();
        inputs
            .parse(
                "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: old}\nspec: {addresses: [198.51.100.0/28]}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: shop, labels: {tier: web}}}\n",
                "in.yaml",
            )
            .unwrap();
        assert_eq!(inputs.pools.len(), 1);
        assert!(inputs.pools[0].spec.auto_assign);
        assert_eq!(inputs.namespaces.len(), 1);
        let e = inputs.parse("kind: IPAddressPool\napiVersion: ferrolb.io/v1beta1\nmetadata: {name: bad}\nspec: {addresses: 5}\n", "b.yaml");
        let msg = e.unwrap_err().to_string();
        assert!(msg.starts_with("b.yaml: IPAddressPool \"bad\":"), "{msg}");
        assert!(
            inputs
                .parse("a: [", "c.yaml")
                .unwrap_err()
                .to_string()
                .starts_with("c.yaml: not valid YAML")
        );
    }
}
