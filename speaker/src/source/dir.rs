//! The standalone source: the directory that `ferrolb-controller --source dir:PATH` reads
//! and writes. The speaker reads the same Kubernetes-shaped YAML (Nodes, Services,
//! EndpointSlices, IPAddressPools, L2Advertisements, the BGP kinds, and Secrets named
//! by a BGPPeer's `passwordSecret`: `type: kubernetes.io/basic-auth`, key `password`
//! in `data`, base64, or in `stringData`) and the controller's record of assigned
//! addresses, and turns them into a [`crate::world::World`].
//!
//! A file that does not parse leaves the inputs as they were: the speaker goes on from
//! the last reading in which every file parsed, so a half-saved edit never makes every
//! node stop announcing. (Keeping each file's last good text instead would hold a copy of
//! every file in memory: megabytes for a directory of thousands of Services.)

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ferrolb_crds::documents::Inputs;
use ferrolb_crds::standalone::AssignmentList;
use kube::ResourceExt;

pub use super::Snapshot;

/// Reads a directory.
#[derive(Debug)]
pub struct DirSource {
    dir: PathBuf,
    lb_class: Option<String>,
    /// A reading in which every file parsed has been returned: from then on a file that
    /// does not parse makes [`DirSource::read`] fail, so the last inputs stay in use.
    read_good: bool,
    stamp: Vec<(PathBuf, Option<SystemTime>, u64, u64)>,
}

fn yaml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.')
                && (name.ends_with(".yaml") || name.ends_with(".yml"))
                && p.is_file()
        })
        .collect();
    files.sort();
    Ok(files)
}

impl DirSource {
    pub fn new(dir: PathBuf, lb_class: Option<String>) -> DirSource {
        DirSource {
            dir,
            lb_class,
            read_good: false,
            stamp: Vec::new(),
        }
    }

    /// True when a file (or the controller's record) changed since the last call.
    pub fn changed(&mut self) -> bool {
        let mut files = yaml_files(&self.dir).unwrap_or_default();
        files.push(ferrolb_crds::standalone::assignments_path(&self.dir));
        let stamp: Vec<_> = files
            .into_iter()
            .map(|p| {
                let meta = std::fs::metadata(&p).ok();
                let mtime = meta.as_ref().and_then(|m| m.modified().ok());
                // The inode too: a file renamed over another within one tick of the
                // file system's clock, with the same length, is still a change.
                let (len, ino) = meta.map(|m| (m.len(), m.ino())).unwrap_or((0, 0));
                (p, mtime, len, ino)
            })
            .collect();
        let changed = stamp != self.stamp;
        self.stamp = stamp;
        changed
    }

    /// Reads everything and builds the world. Once a reading has succeeded, a file that
    /// does not parse is an error (the caller keeps the last inputs); before, its
    /// objects are left out and the problem reported.
    pub fn read(&mut self) -> Result<Snapshot, std::io::Error> {
        let mut problems = Vec::new();
        let mut inputs = Inputs::default();
        for f in yaml_files(&self.dir)? {
            let origin = f.display().to_string();
            let text = match std::fs::read_to_string(&f) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("{origin}: {e}"));
                    continue;
                }
            };
            let mut one = Inputs::default();
            match one.parse(&text, &origin) {
                Ok(()) => merge(&mut inputs, one),
                Err(e) if self.read_good => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        e.to_string(),
                    ));
                }
                Err(e) => problems.push(format!("{e} (its objects are left out)")),
            }
        }
        let record = match AssignmentList::read(&self.dir) {
            Ok(r) => r.unwrap_or_default(),
            // Without the record no Service has an address: better the last one.
            Err(e) if self.read_good => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    e.to_string(),
                ));
            }
            Err(e) => {
                problems.push(e.to_string());
                AssignmentList::default()
            }
        };
        self.read_good = true;
        let snap = build(&mut inputs, &record, self.lb_class.as_deref(), problems);
        // Tens of thousands of parsed objects take a while to free, and nobody waits for
        // that: the snapshot goes out first.
        if inputs.services.len() + inputs.endpoint_slices.len() > 1_000 {
            let _ = std::thread::Builder::new()
                .name("drop-inputs".into())
                .spawn(move || {
                    drop(inputs);
                    crate::memory::trim();
                });
        }
        Ok(snap)
    }
}

/// Appends one file's objects, each Secret reduced to its password first.
fn merge(into: &mut Inputs, mut from: Inputs) {
    from.secrets = from
        .secrets
        .into_iter()
        .map(crate::bgp::config::slim_secret)
        .collect();
    into.extend(from);
}

/// Builds the world from parsed inputs and the controller's record (pure): each
/// Service's addresses are those the record gives it (none: not assigned yet).
pub fn build(
    inputs: &mut Inputs,
    record: &AssignmentList,
    lb_class: Option<&str>,
    problems: Vec<String>,
) -> Snapshot {
    let assigned = record.by_service();
    inputs.services.retain_mut(|svc| {
        if !super::handles(svc, lb_class) {
            return false;
        }
        let namespace = svc.namespace().unwrap_or_else(|| "default".into());
        let Some(a) = assigned.get(&namespace, &svc.name_any()) else {
            return false;
        };
        svc.metadata.namespace = Some(namespace);
        ferrolb_crds::service::set_ingress_ips(svc, &a.ips);
        true
    });
    super::snapshot(inputs, lb_class, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    const CLUSTER: &str = r#"
apiVersion: v1
kind: Node
metadata: {name: node1}
status:
  conditions: [{type: Ready, status: "True"}]
  addresses: [{type: InternalIP, address: 198.51.100.11}]
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec: {addresses: [198.51.100.200-198.51.100.250]}
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec: {ipAddressPools: [lan]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: other-class, namespace: default}
spec: {type: LoadBalancer, loadBalancerClass: x, ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.244.1.5], nodeName: node1, conditions: {ready: true}}]
"#;

    const RECORD: &str = "apiVersion: ferrolb.io/v1beta1\nkind: AssignmentList\nitems:\n- {namespace: default, name: web, ips: ['198.51.100.200'], pool: lan}\n- {namespace: default, name: other-class, ips: ['198.51.100.201'], pool: lan}\n";

    #[test]
    fn world_from_a_standalone_directory() {
        let dir = std::env::temp_dir().join(format!("flb-speaker-dir-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".ferrolb")).unwrap();
        std::fs::write(dir.join("cluster.yaml"), CLUSTER).unwrap();
        std::fs::write(dir.join(".ferrolb/assignments.yaml"), RECORD).unwrap();
        let mut src = DirSource::new(dir.clone(), None);
        assert!(src.changed());
        assert!(!src.changed());
        let snap = src.read().unwrap();
        assert_eq!(
            snap.node_addresses.get("node1"),
            Some(&"198.51.100.11".parse().unwrap())
        );
        assert_eq!(snap.world.services.len(), 1, "only this class");
        let web = snap.world.services.values().next().unwrap();
        assert_eq!(
            web.ips.as_slice(),
            ["198.51.100.200".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(&*web.pool, "lan");
        assert_eq!(web.endpoints.len(), 1);
        assert!(snap.world.nodes["node1"].ready);
        assert_eq!(snap.world.l2_ads.len(), 1);
        // A broken edit: the reading fails, naming the file, and the caller keeps the
        // last inputs.
        std::fs::write(dir.join("cluster.yaml"), "kind: [broken").unwrap();
        assert!(src.changed());
        let err = src.read().unwrap_err();
        assert!(err.to_string().contains("cluster.yaml"), "{err}");
        // Fixed: read again.
        std::fs::write(dir.join("cluster.yaml"), CLUSTER).unwrap();
        assert!(src.changed());
        assert_eq!(src.read().unwrap().world.services.len(), 1);
        // A speaker starting on a broken file has no last inputs: it goes on without
        // that file's objects, and says so.
        std::fs::write(dir.join("cluster.yaml"), "kind: [broken").unwrap();
        let snap = DirSource::new(dir.clone(), None).read().unwrap();
        assert!(snap.world.services.is_empty());
        assert!(
            snap.problems
                .iter()
                .any(|p| p.contains("cluster.yaml") && p.contains("left out")),
            "{:?}",
            snap.problems
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    const MD5: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: BGPPeer
metadata: {name: router, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64500, peerAddress: 198.51.100.1, passwordSecret: {name: md5}}
---
apiVersion: v1
kind: Secret
metadata: {name: md5, namespace: ferrolb-system}
type: kubernetes.io/basic-auth
data: {password: czNjcmV0}
"#;

    #[test]
    fn password_secret_from_a_file() {
        let dir = std::env::temp_dir().join(format!("flb-speaker-md5-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bgp.yaml"), MD5).unwrap();
        let mut src = DirSource::new(dir.clone(), None);
        let snap = src.read().unwrap();
        let session = &snap.world.bgp_peers["router"].session;
        assert_eq!(
            session.password.as_deref(),
            Some("s3cret"),
            "{:?}",
            snap.problems
        );
        assert!(snap.problems.is_empty(), "{:?}", snap.problems);
        // The Secret goes: the peer stays, without its key, and the problem is told.
        std::fs::write(dir.join("bgp.yaml"), MD5.split("---").next().unwrap()).unwrap();
        let snap = src.read().unwrap();
        assert!(snap.world.bgp_peers["router"].session.missing_password());
        assert!(
            snap.problems
                .iter()
                .any(|p| p.contains("router") && p.contains("md5")),
            "{:?}",
            snap.problems
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
