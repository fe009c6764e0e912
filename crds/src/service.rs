//! Reading and writing a core Service's load-balancer status, the one place both
//! programs touch it.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Service, ServiceStatus};

/// The addresses in `status.loadBalancer.ingress` (hostnames and unparsable entries,
/// which FerroLB never writes, are skipped).
pub fn ingress_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ing| {
            ing.iter()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Sets `status.loadBalancer.ingress` to these addresses, in order.
pub fn set_ingress_ips(svc: &mut Service, ips: &[IpAddr]) {
    let ingress = ips
        .iter()
        .map(|ip| LoadBalancerIngress {
            ip: Some(ip.to_string()),
            ..Default::default()
        })
        .collect();
    svc.status
        .get_or_insert_with(ServiceStatus::default)
        .load_balancer = Some(LoadBalancerStatus {
        ingress: Some(ingress),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut svc = Service::default();
        assert!(ingress_ips(&svc).is_empty());
        let ips: Vec<IpAddr> = vec![
            "198.51.100.1".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ];
        set_ingress_ips(&mut svc, &ips);
        assert_eq!(ingress_ips(&svc), ips);
    }
}
