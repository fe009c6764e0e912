//! The directory source: `--source dir:PATH`.
//!
//! The controller reads Kubernetes-shaped YAML (IPAddressPools, Services, Namespaces, and
//! the advertisement/peer kinds, which are only checked) from the `*.yaml` / `*.yml` files
//! directly in `PATH`, drives the same [`Engine`] as the Kubernetes shell, and records what
//! it decided in `PATH/.ferrolb/`:
//!
//! - `assignments.yaml`: an [`AssignmentList`], one item per Service with addresses. Files
//!   have no status subresource, so this record *is* the Services' status: it is read back
//!   at start-up and fed to the engine as `status.loadBalancer.ingress`, so a restart never
//!   moves an address. The speaker reads the same file.
//! - `status.yaml`: a [`ControllerStatus`] for people: files that could not be read, objects
//!   that cannot be used, every Service's decision with its error, pool statuses, and the
//!   most recent Events. The Events are also logged (`Normal` at info, `Warning` at warn).
//!
//! - `last-good/NAME`: a copy (mode 0600: inputs may hold BGP passwords) of each input
//!   file's last content that parsed.
//!
//! Files are replaced atomically (a temporary file in the same directory, then a rename)
//! and only when their content changes.
//!
//! A file that cannot be read or parsed is reported (one line naming the file) and the
//! objects it held at its last good read stay in use, even across a restart (from
//! `last-good/`), so a half-saved edit never takes addresses away. The directory is polled every [`POLL_INTERVAL`] (names, sizes and
//! modification times); any change triggers a new pass.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ferrolb_crds::IPAddressPoolStatus;
use ferrolb_crds::validate::{check_pools, check_references};
use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tracing::{debug, error, info, warn};

use crate::allocator::ServiceKey;
use crate::cli::{RunArgs, Source};
use crate::engine::{Action, Decision, Engine, EngineConfig, EventType, Kind};
use crate::model::{self, Inputs, service_key};

use ferrolb_crds::standalone::quoted_ips;
pub use ferrolb_crds::standalone::{
    API_VERSION, ASSIGNMENT_LIST_KIND, ASSIGNMENTS_FILE, AssignmentError, AssignmentList,
    STATE_DIR, ServiceAssignment, assignments_path,
};

/// The human-readable status, in [`STATE_DIR`].
pub const STATUS_FILE: &str = "status.yaml";
/// A copy of every input file's last good content, in [`STATE_DIR`], so that a file that
/// is malformed when the controller (re)starts still contributes what it last held.
pub const LAST_GOOD_DIR: &str = "last-good";
/// `kind` of `status.yaml`.
pub const CONTROLLER_STATUS_KIND: &str = "ControllerStatus";
/// How often the directory is checked for changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How many Events `status.yaml` keeps (oldest dropped first).
pub const MAX_EVENTS: usize = 50;

/// The Service an assignment belongs to.
fn assignment_key(a: &ServiceAssignment) -> ServiceKey {
    ServiceKey {
        namespace: a.namespace.clone(),
        name: a.name.clone(),
    }
}

/// `PATH/.ferrolb/status.yaml`.
pub fn status_path(dir: &Path) -> PathBuf {
    dir.join(STATE_DIR).join(STATUS_FILE)
}

// ---------------------------------------------------------------------------------------
// status.yaml
// ---------------------------------------------------------------------------------------

/// The content of `PATH/.ferrolb/status.yaml`: what a person needs to see what went wrong.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerStatus {
    pub api_version: String,
    pub kind: String,
    /// Input files that could not be read or parsed.
    #[serde(default)]
    pub files: Vec<FileError>,
    /// Objects that cannot be used (unknown references, duplicates, wrong namespace, an
    /// unreadable assignment record). Pool problems are in `pools[].status.conditions`.
    #[serde(default)]
    pub problems: Vec<String>,
    /// Every handled Service, sorted by namespace, then name.
    #[serde(default)]
    pub services: Vec<ServiceDecision>,
    /// Every pool's status, by name.
    #[serde(default)]
    pub pools: Vec<PoolStatusEntry>,
    /// The most recent Events (at most [`MAX_EVENTS`]), oldest first.
    #[serde(default)]
    pub events: Vec<EventEntry>,
}

/// An input file that could not be used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileError {
    /// The file, as `PATH/name`.
    pub file: String,
    /// One line, starting with the file.
    pub error: String,
    /// True when the objects of the file's last good read are still in use; false when
    /// the file never parsed and contributes nothing.
    pub using_last_good: bool,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.using_last_good {
            "using its last good content"
        } else {
            "file ignored"
        };
        write!(f, "{} ({what})", self.error)
    }
}

/// The engine's decision for one Service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDecision {
    pub namespace: String,
    pub name: String,
    #[serde(serialize_with = "quoted_ips")]
    pub ips: Vec<IpAddr>,
    pub pool: Option<String>,
    /// Why the Service has no (or not all its) addresses.
    pub error: Option<String>,
}

/// A pool's status, as it would be written on the IPAddressPool.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolStatusEntry {
    pub name: String,
    pub status: IPAddressPoolStatus,
}

/// An Event the engine recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventEntry {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    /// `Service ns/name` or `IPAddressPool name`.
    pub object: String,
    pub message: String,
}

impl std::fmt::Display for EventEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}: {}",
            self.type_, self.object, self.reason, self.message
        )
    }
}

impl ControllerStatus {
    /// The file's text.
    pub fn to_yaml(&self) -> Result<String, serde_saphyr::ser::Error> {
        // Messages, names and pool statuses come from user files: an error is reported,
        // not a panic.
        let body = serde_saphyr::to_string(self)?;
        Ok(format!(
            "# Written by ferrolb-controller (--source dir): problems, decisions and events. Do not edit.\n{body}"
        ))
    }

    /// Parses `status.yaml` (for tests and tools).
    pub fn parse(text: &str) -> Result<ControllerStatus, String> {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------------------------------
// The controller over a directory
// ---------------------------------------------------------------------------------------

/// What the directory controller needs from the command line.
#[derive(Clone, Debug)]
pub struct Options {
    /// Handle only Services of this `spec.loadBalancerClass`.
    pub lb_class: Option<String>,
    /// FerroLB's namespace: pools in another namespace are ignored (reported), pools
    /// without `metadata.namespace` are used.
    pub namespace: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lb_class: None,
            namespace: "ferrolb-system".into(),
        }
    }
}

impl From<&RunArgs> for Options {
    fn from(args: &RunArgs) -> Self {
        Options {
            lb_class: args.lb_class.clone(),
            namespace: args.namespace.clone(),
        }
    }
}

/// The directory cannot be listed, or the results cannot be written.
#[derive(Debug, Error)]
pub enum PassError {
    #[error("cannot read directory {dir}: {source}")]
    Unreadable { dir: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {message}")]
    Serialize { path: String, message: String },
}

/// What one pass did.
#[derive(Debug)]
pub struct PassResult {
    /// The engine's decision for every handled Service, sorted by namespace, then name.
    pub decisions: Vec<Decision>,
    /// The record after the pass (what `assignments.yaml` now holds).
    pub assignments: AssignmentList,
    /// Input files that could not be read or parsed.
    pub file_errors: Vec<FileError>,
    /// Objects that cannot be used (see [`ControllerStatus::problems`]).
    pub problems: Vec<String>,
    /// Events recorded during this pass.
    pub events: Vec<EventEntry>,
    /// Whether `assignments.yaml` / `status.yaml` were rewritten (content changed).
    pub wrote_assignments: bool,
    pub wrote_status: bool,
}

impl PassResult {
    /// The `--once` report: a table of Services (namespace/name, IPs, pool, error), then
    /// every problem (files, objects, warnings about pools).
    pub fn report(&self) -> String {
        let rows: Vec<[String; 4]> = self
            .decisions
            .iter()
            .map(|d| {
                let ips = d
                    .ips
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",");
                [
                    d.key.to_string(),
                    if ips.is_empty() { "-".into() } else { ips },
                    d.pool.clone().unwrap_or_else(|| "-".into()),
                    d.error.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        let header = ["SERVICE", "IPS", "POOL", "ERROR"].map(String::from);
        let mut widths = header.clone().map(|h| h.len());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&rows) {
            let line = format!(
                "{:w0$}  {:w1$}  {:w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
        if rows.is_empty() {
            out.push_str("(no LoadBalancer Services)\n");
        }
        let pool_warnings = self
            .events
            .iter()
            .filter(|e| e.type_ == "Warning" && !e.object.starts_with("Service "));
        let problems: Vec<String> = self
            .file_errors
            .iter()
            .map(ToString::to_string)
            .chain(self.problems.iter().cloned())
            .chain(pool_warnings.map(ToString::to_string))
            .collect();
        if !problems.is_empty() {
            let _ = writeln!(out, "\nProblems:");
            for p in problems {
                let _ = writeln!(out, "  {p}");
            }
        }
        out
    }
}

/// A file's identity for change detection: modification time and size.
type Stamp = (Option<SystemTime>, u64);

/// The `*.yaml` / `*.yml` files directly in the directory, by name.
type Listing = Vec<(String, Stamp)>;

struct FileEntry {
    stamp: Stamp,
    /// The objects of the last good read.
    inputs: Option<Inputs>,
    error: Option<String>,
}

/// The controller over one directory: its engine, the last good content of every file,
/// and the assignment record. [`DirController::pass`] is one full recomputation.
pub struct DirController {
    dir: PathBuf,
    options: Options,
    engine: Engine,
    files: BTreeMap<String, FileEntry>,
    /// The assignments: the Services' status.
    record: BTreeMap<ServiceKey, ServiceAssignment>,
    /// Why the record could not be read at start-up.
    record_error: Option<String>,
    /// Services handled at the last pass (to tell the engine about deletions).
    handled: BTreeSet<ServiceKey>,
    pool_status: BTreeMap<String, IPAddressPoolStatus>,
    events: VecDeque<EventEntry>,
    /// The listing of the last pass whose results were written.
    seen: Option<Listing>,
}

impl DirController {
    /// A controller over `dir`, its record read back from `dir/.ferrolb/assignments.yaml`
    /// (a missing record is an empty one; an unreadable one is reported and ignored).
    pub fn open(dir: impl Into<PathBuf>, options: Options) -> DirController {
        let dir = dir.into();
        let (record, record_error) = match AssignmentList::read(&dir) {
            Ok(list) => (
                list.unwrap_or_default()
                    .items
                    .into_iter()
                    .map(|i| (assignment_key(&i), i))
                    .collect(),
                None,
            ),
            Err(e) => {
                error!("{e}; starting without a record of assignments: addresses may move");
                (BTreeMap::new(), Some(e.to_string()))
            }
        };
        if !record.is_empty() {
            info!(
                "{} assignment(s) read back from {}",
                record.len(),
                assignments_path(&dir).display()
            );
        }
        DirController {
            engine: Engine::new(EngineConfig {
                lb_class: options.lb_class.clone(),
            }),
            dir,
            options,
            files: BTreeMap::new(),
            record,
            record_error,
            handled: BTreeSet::new(),
            pool_status: BTreeMap::new(),
            events: VecDeque::new(),
            seen: None,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs a pass if the directory changed since the last one.
    pub fn poll(&mut self) -> Result<Option<PassResult>, PassError> {
        let listing = self.list()?;
        if self.seen.as_ref() == Some(&listing) {
            return Ok(None);
        }
        self.pass_over(listing).map(Some)
    }

    /// Reads what changed, recomputes every assignment, and writes the results.
    pub fn pass(&mut self) -> Result<PassResult, PassError> {
        let listing = self.list()?;
        self.pass_over(listing)
    }

    fn list(&self) -> Result<Listing, PassError> {
        list_dir(&self.dir).map_err(|source| PassError::Unreadable {
            dir: self.dir.display().to_string(),
            source,
        })
    }

    fn pass_over(&mut self, listing: Listing) -> Result<PassResult, PassError> {
        self.load(&listing);
        let (mut inputs, mut problems) = self.merged();
        if let Some(e) = &self.record_error {
            problems.insert(0, format!("{e} (ignored: addresses were not read back)"));
        }

        // Cross-object rules the engine does not report (pool problems it does).
        let check = check_pools(&inputs.pools);
        for p in check_references(
            &check,
            &inputs.l2_advertisements,
            &inputs.bgp_advertisements,
            &inputs.bgp_peers,
            &inputs.communities,
        ) {
            problems.push(format!("{p} ({})", p.reason));
        }
        for p in &problems {
            warn!("{p}");
        }

        // The record is the Services' status, as the API server would hold it.
        let lb_class = self.options.lb_class.as_deref();
        let mut handled = BTreeSet::new();
        for svc in &mut inputs.services {
            if !model::is_handled(svc, lb_class) {
                continue;
            }
            let key = service_key(svc);
            if let Some(a) = self.record.get(&key) {
                ferrolb_crds::service::set_ingress_ips(svc, &a.ips);
            }
            handled.insert(key);
        }

        let mut actions = Vec::new();
        self.engine.set_now(k8s_openapi::jiff::Timestamp::now());
        for gone in self.handled.difference(&handled) {
            actions.extend(self.engine.service_deleted(gone));
        }
        self.engine.set_namespaces(inputs.namespace_labels());
        actions.extend(self.engine.set_pools(&inputs.pools));
        let (mut decisions, more) = self.engine.resync(&inputs.services);
        actions.extend(more);
        self.handled = handled;

        let mut events = Vec::new();
        for action in actions {
            match action {
                Action::Event {
                    kind,
                    namespace,
                    name,
                    type_,
                    reason,
                    message,
                } => {
                    let object = match kind {
                        Kind::Service => format!("Service {namespace}/{name}"),
                        // The FerroLB kinds live in one namespace: the name says it all.
                        _ => format!("{} {name}", kind.as_str()),
                    };
                    let entry = EventEntry {
                        type_: match type_ {
                            EventType::Normal => "Normal".into(),
                            EventType::Warning => "Warning".into(),
                        },
                        reason,
                        object,
                        message,
                    };
                    match type_ {
                        EventType::Normal => {
                            info!(reason = %entry.reason, "{}: {}", entry.object, entry.message)
                        }
                        EventType::Warning => {
                            warn!(reason = %entry.reason, "{}: {}", entry.object, entry.message)
                        }
                    }
                    events.push(entry);
                }
                Action::SetPoolStatus { name, status, .. } => {
                    self.pool_status.insert(name, status);
                }
                // The record is rebuilt from the decisions below, which say the same.
                Action::SetServiceStatus { .. } | Action::ClearServiceStatus { .. } => {}
            }
        }
        let pool_names: BTreeSet<String> = inputs.pools.iter().map(|p| p.name_any()).collect();
        self.pool_status.retain(|name, _| pool_names.contains(name));
        for e in &events {
            self.events.push_back(e.clone());
        }
        while self.events.len() > MAX_EVENTS {
            self.events.pop_front();
        }

        decisions.sort_by(|a, b| a.key.cmp(&b.key));
        let record: BTreeMap<ServiceKey, ServiceAssignment> = decisions
            .iter()
            .filter(|d| !d.ips.is_empty())
            .map(|d| {
                let a = ServiceAssignment {
                    namespace: d.key.namespace.clone(),
                    name: d.key.name.clone(),
                    ips: d.ips.clone(),
                    pool: d.pool.clone().unwrap_or_default(),
                };
                (d.key.clone(), a)
            })
            .collect();
        log_changes(&self.record, &record);
        self.record = record;

        let assignments = AssignmentList::new(self.record.values().cloned().collect());
        let file_errors = self.file_errors();
        let status = ControllerStatus {
            api_version: API_VERSION.into(),
            kind: CONTROLLER_STATUS_KIND.into(),
            files: file_errors.clone(),
            problems: problems.clone(),
            services: decisions
                .iter()
                .map(|d| ServiceDecision {
                    namespace: d.key.namespace.clone(),
                    name: d.key.name.clone(),
                    ips: d.ips.clone(),
                    pool: d.pool.clone(),
                    error: d.error.clone(),
                })
                .collect(),
            pools: self
                .pool_status
                .iter()
                .map(|(name, status)| PoolStatusEntry {
                    name: name.clone(),
                    status: status.clone(),
                })
                .collect(),
            events: self.events.iter().cloned().collect(),
        };

        // Write; on failure the next poll retries even if nothing changed.
        self.seen = None;
        let state = self.dir.join(STATE_DIR);
        let write_err = |path: &Path| {
            let path = path.display().to_string();
            move |source| PassError::Write { path, source }
        };
        std::fs::create_dir_all(&state).map_err(write_err(&state))?;
        let a_path = assignments_path(&self.dir);
        let serialize_err = |path: &Path, e: &dyn std::fmt::Display| PassError::Serialize {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let a_text = assignments.to_yaml();
        let wrote_assignments =
            write_if_changed(&a_path, &a_text, PUBLIC).map_err(write_err(&a_path))?;
        let s_path = status_path(&self.dir);
        let s_text = status.to_yaml().map_err(|e| serialize_err(&s_path, &e))?;
        let wrote_status =
            write_if_changed(&s_path, &s_text, PUBLIC).map_err(write_err(&s_path))?;
        self.seen = Some(listing);
        // The record was read back and is now rewritten: its error is history.
        self.record_error = None;

        Ok(PassResult {
            decisions,
            assignments,
            file_errors,
            problems,
            events,
            wrote_assignments,
            wrote_status,
        })
    }

    /// Rereads the files whose stamp changed; forgets the files that are gone. A file
    /// that does not parse keeps the objects of its last good read, in memory or, after a
    /// restart, from its copy in `.ferrolb/last-good/`.
    fn load(&mut self, listing: &Listing) {
        let names: BTreeSet<&str> = listing.iter().map(|(n, _)| n.as_str()).collect();
        self.files.retain(|name, _| {
            let keep = names.contains(name.as_str());
            if !keep {
                info!("{}: removed", self.dir.join(name).display());
            }
            keep
        });
        let cache = self.dir.join(STATE_DIR).join(LAST_GOOD_DIR);
        if let Ok(entries) = std::fs::read_dir(&cache) {
            for e in entries.flatten() {
                if !e.file_name().to_str().is_some_and(|n| names.contains(n)) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        for (name, stamp) in listing {
            if self.files.get(name).is_some_and(|f| f.stamp == *stamp) {
                continue;
            }
            let path = self.dir.join(name);
            let origin = path.display().to_string();
            let parse = |text: &str, origin: &str| {
                let mut inputs = Inputs::default();
                inputs
                    .parse(text, origin)
                    .map(|()| inputs)
                    .map_err(|e| e.to_string())
            };
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| format!("{origin}: {e}"))
                .and_then(|text| parse(&text, &origin).map(|inputs| (inputs, text)));
            let entry = self.files.entry(name.clone()).or_insert(FileEntry {
                stamp: *stamp,
                inputs: None,
                error: None,
            });
            entry.stamp = *stamp;
            let copy = cache.join(name);
            match parsed {
                Ok((inputs, text)) => {
                    if entry.error.take().is_some() {
                        info!("{origin}: read again after an error");
                    }
                    entry.inputs = Some(inputs);
                    let saved = std::fs::create_dir_all(&cache)
                        .and_then(|()| write_if_changed(&copy, &text, PRIVATE));
                    if let Err(e) = saved {
                        warn!("cannot save a copy of {origin} in {}: {e}", cache.display());
                    }
                }
                Err(e) => {
                    if entry.inputs.is_none() {
                        // Not read since the start: its last good copy, if any.
                        let origin = copy.display().to_string();
                        entry.inputs = std::fs::read_to_string(&copy)
                            .ok()
                            .and_then(|text| parse(&text, &origin).ok());
                    }
                    let keeping = if entry.inputs.is_some() {
                        "keeping its last good content"
                    } else {
                        "ignoring it"
                    };
                    error!("{e} ({keeping})");
                    entry.error = Some(e);
                }
            }
        }
    }

    fn file_errors(&self) -> Vec<FileError> {
        self.files
            .iter()
            .filter_map(|(name, f)| {
                Some(FileError {
                    file: self.dir.join(name).display().to_string(),
                    error: f.error.clone()?,
                    using_last_good: f.inputs.is_some(),
                })
            })
            .collect()
    }

    /// Every file's objects, in file-name order, without duplicates (the first wins) and
    /// without pools of other namespaces; with the problems found doing so.
    fn merged(&self) -> (Inputs, Vec<String>) {
        let mut out = Inputs::default();
        let mut problems = Vec::new();
        let mut services: BTreeMap<ServiceKey, &str> = BTreeMap::new();
        let mut pools: BTreeMap<String, &str> = BTreeMap::new();
        for (file, entry) in &self.files {
            let Some(inputs) = &entry.inputs else {
                continue;
            };
            for svc in &inputs.services {
                let key = service_key(svc);
                if let Some(first) = services.get(&key) {
                    problems.push(format!("Service {key} in {file} is also defined in {first}; using the one in {first}"));
                    continue;
                }
                services.insert(key, file);
                out.services.push(svc.clone());
            }
            for pool in &inputs.pools {
                let name = pool.name_any();
                if let Some(ns) = pool.namespace().filter(|ns| *ns != self.options.namespace) {
                    problems.push(format!(
                        "IPAddressPool {name:?} in {file} is in namespace {ns:?}, not {:?}: ignored",
                        self.options.namespace
                    ));
                    continue;
                }
                if let Some(first) = pools.get(&name) {
                    problems.push(format!(
                        "IPAddressPool {name:?} in {file} is also defined in {first}; using the one in {first}"
                    ));
                    continue;
                }
                pools.insert(name, file);
                out.pools.push(pool.clone());
            }
            out.namespaces.extend(inputs.namespaces.iter().cloned());
            out.l2_advertisements
                .extend(inputs.l2_advertisements.iter().cloned());
            out.bgp_advertisements
                .extend(inputs.bgp_advertisements.iter().cloned());
            out.bgp_peers.extend(inputs.bgp_peers.iter().cloned());
            out.communities.extend(inputs.communities.iter().cloned());
            out.bfd_profiles.extend(inputs.bfd_profiles.iter().cloned());
        }
        (out, problems)
    }
}

/// Lists the `*.yaml` / `*.yml` regular files (or links to them) directly in `dir`, not
/// dotfiles, sorted by name.
fn list_dir(dir: &Path) -> std::io::Result<Listing> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        // Follows links; a dangling link or a directory is not an input file.
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        out.push((name, (meta.modified().ok(), meta.len())));
    }
    out.sort();
    Ok(out)
}

fn log_changes(
    old: &BTreeMap<ServiceKey, ServiceAssignment>,
    new: &BTreeMap<ServiceKey, ServiceAssignment>,
) {
    let ips = |a: &ServiceAssignment| {
        a.ips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    for (key, a) in new {
        match old.get(key) {
            Some(o) if o == a => {}
            Some(o) => debug!(
                "{key}: {} from pool {} (was {} from pool {})",
                ips(a),
                a.pool,
                ips(o),
                o.pool
            ),
            None => debug!("{key}: {} from pool {}", ips(a), a.pool),
        }
    }
    for (key, o) in old {
        if !new.contains_key(key) {
            info!(
                "{key}: released {} (the Service is gone or no longer handled)",
                ips(o)
            );
        }
    }
}

/// File mode of what the controller writes for everyone to read (the record, the status).
const PUBLIC: u32 = 0o644;
/// File mode of the input copies, which may hold secrets (BGP passwords).
const PRIVATE: u32 = 0o600;

/// Replaces `path` with `content` atomically (temporary file in the same directory, then
/// rename) unless it already holds exactly that. Returns whether it wrote.
fn write_if_changed(path: &Path, content: &str, mode: u32) -> std::io::Result<bool> {
    if std::fs::read(path).is_ok_and(|old| old == content.as_bytes()) {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| true)
}

/// One pass over `dir` with a fresh controller, as a restart would do: reads the record
/// back, reads every file, decides, writes `dir/.ferrolb/`.
pub fn pass(dir: &Path, options: &Options) -> Result<PassResult, PassError> {
    DirController::open(dir, options.clone()).pass()
}

/// `ferrolb-controller --source dir:PATH [--once]`.
pub async fn run(args: &RunArgs) -> anyhow::Result<()> {
    let Source::Dir(dir) = &args.source else {
        anyhow::bail!("the directory source needs --source dir:PATH");
    };
    let mut ctl = DirController::open(dir, Options::from(args));
    if args.once {
        let result = ctl.pass()?;
        print!("{}", result.report());
        return Ok(());
    }

    use tokio::signal::unix::{SignalKind, signal};
    // Both listeners exist before the first pass and for the whole loop: a fresh
    // `ctrl_c()` per iteration would miss a SIGINT arriving while a pass runs.
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let first = ctl.pass()?;
    summary(&first);
    info!(
        "watching {} for changes (every {} ms)",
        dir.display(),
        POLL_INTERVAL.as_millis()
    );
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => match ctl.poll() {
                Ok(result) => {
                    if last_error.take().is_some() {
                        info!("{}: readable again", dir.display());
                    }
                    if let Some(result) = result {
                        summary(&result);
                    }
                }
                Err(e) => {
                    let message = e.to_string();
                    if last_error.as_deref() != Some(message.as_str()) {
                        error!("{message}; keeping the last assignments and retrying");
                        last_error = Some(message);
                    }
                }
            },
            _ = terminate.recv() => {
                info!("SIGTERM received, stopping");
                break;
            }
            _ = interrupt.recv() => {
                info!("SIGINT received, stopping");
                break;
            }
        }
    }
    Ok(())
}

fn summary(result: &PassResult) {
    let assigned = result
        .decisions
        .iter()
        .filter(|d| !d.ips.is_empty())
        .count();
    let failed = result
        .decisions
        .iter()
        .filter(|d| d.error.is_some())
        .count();
    info!(
        services = result.decisions.len(),
        assigned,
        failed,
        files_with_errors = result.file_errors.len(),
        wrote_assignments = result.wrote_assignments,
        "pass done"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_list_round_trip() {
        let list = AssignmentList::new(vec![
            ServiceAssignment {
                namespace: "shop".into(),
                name: "api".into(),
                ips: vec![
                    "198.51.100.200".parse().unwrap(),
                    "2001:db8:51::200".parse().unwrap(),
                ],
                pool: "lan".into(),
            },
            ServiceAssignment {
                namespace: "default".into(),
                name: "web".into(),
                ips: vec!["203.0.113.1".parse().unwrap()],
                pool: "1234".into(),
            },
        ]);
        assert_eq!(list.items[0].namespace, "default");
        let text = list.to_yaml();
        assert!(text.contains("\"kind\":\"AssignmentList\""), "{text}");
        assert!(
            text.contains("\"ips\":[\"198.51.100.200\",\"2001:db8:51::200\"]"),
            "{text}"
        );
        assert!(text.contains("\"pool\":\"1234\""), "{text}");
        // One Service per line, and YAML all the same.
        assert_eq!(text.lines().filter(|l| l.contains("\"pool\"")).count(), 2);
        let yaml: AssignmentList = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(yaml, list);
        assert_eq!(AssignmentList::parse(&text, "a.yaml").unwrap(), list);
        let empty = AssignmentList::default().to_yaml();
        assert_eq!(
            AssignmentList::parse(&empty, "a.yaml").unwrap(),
            AssignmentList::default()
        );
    }

    #[test]
    fn assignment_list_rejects() {
        let e =
            AssignmentList::parse("apiVersion: v1\nkind: List\nitems: []\n", "x.yaml").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x.yaml: not a valid AssignmentList"),
            "{e}"
        );
        let dup = "apiVersion: ferrolb.io/v1beta1\nkind: AssignmentList\nitems:\n- {namespace: a, name: b, ips: ['198.51.100.1'], pool: p}\n- {namespace: a, name: b, ips: ['198.51.100.2'], pool: p}\n";
        assert!(
            AssignmentList::parse(dup, "x.yaml")
                .unwrap_err()
                .to_string()
                .contains("a/b is listed twice")
        );
        let bad_ip = "apiVersion: ferrolb.io/v1beta1\nkind: AssignmentList\nitems:\n- {namespace: a, name: b, ips: ['nope'], pool: p}\n";
        assert!(AssignmentList::parse(bad_ip, "x.yaml").is_err());
    }

    #[test]
    fn listing_skips_dotfiles_other_extensions_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.yaml", "a.yml", ".hidden.yaml", "notes.txt", "c.yaml~"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.yaml")).unwrap();
        let names: Vec<String> = list_dir(dir.path())
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["a.yml", "b.yaml"]);
    }

    #[test]
    fn atomic_write_only_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.yaml");
        assert!(write_if_changed(&path, "a: 1\n", PUBLIC).unwrap());
        assert!(!write_if_changed(&path, "a: 1\n", PUBLIC).unwrap());
        assert!(write_if_changed(&path, "a: 2\n", PUBLIC).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a: 2\n");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    }

    #[test]
    fn report_table() {
        let result = PassResult {
            decisions: vec![
                Decision {
                    key: ServiceKey {
                        namespace: "default".into(),
                        name: "web".into(),
                    },
                    ips: vec!["198.51.100.200".parse().unwrap()],
                    pool: Some("lan".into()),
                    error: None,
                },
                Decision {
                    key: ServiceKey {
                        namespace: "shop".into(),
                        name: "api".into(),
                    },
                    ips: vec![],
                    pool: None,
                    error: Some("pool \"lan\" is full".into()),
                },
            ],
            assignments: AssignmentList::default(),
            file_errors: vec![FileError {
                file: "d/bad.yaml".into(),
                error: "d/bad.yaml: not valid YAML: x".into(),
                using_last_good: false,
            }],
            problems: vec![],
            events: vec![],
            wrote_assignments: false,
            wrote_status: false,
        };
        let report = result.report();
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines[0], "SERVICE      IPS             POOL  ERROR");
        assert_eq!(lines[1], "default/web  198.51.100.200  lan   -");
        assert_eq!(
            lines[2],
            "shop/api     -               -     pool \"lan\" is full"
        );
        assert!(
            report.contains("d/bad.yaml: not valid YAML: x (file ignored)"),
            "{report}"
        );
    }
}
