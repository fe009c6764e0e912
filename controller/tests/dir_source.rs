//! The directory source (`--source dir:PATH`) as a library: one pass over a directory,
//! the record it writes (`.ferrolb/assignments.yaml`), restarts that must not move an
//! address, malformed files, and change detection.

use std::net::IpAddr;
use std::path::Path;

use ferrolb_controller::source::dir::{
    self, AssignmentList, ControllerStatus, DirController, Options, PassError, ServiceAssignment,
};

const POOLS: &str = "\
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: alpha, namespace: ferrolb-system}
spec:
  addresses: [198.51.100.10-198.51.100.19]
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: beta, namespace: ferrolb-system}
spec:
  addresses: [198.51.100.20-198.51.100.29, 2001:db8:51::20-2001:db8:51::29]
";

/// The same pools, listed the other way round, in another file name order too.
const POOLS_REORDERED: &str = "\
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: beta, namespace: ferrolb-system}
spec:
  addresses: [2001:db8:51::20-2001:db8:51::29, 198.51.100.20-198.51.100.29]
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: alpha, namespace: ferrolb-system}
spec:
  addresses: [198.51.100.10-198.51.100.19]
";

fn service(namespace: &str, name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         spec:\n  type: LoadBalancer\n  ports: [{{port: 80}}]\n{extra}---\n"
    )
}

fn services() -> String {
    [
        service("zeta", "web", ""),
        service("alpha", "api", ""),
        service("default", "db", ""),
        service(
            "default",
            "dual",
            "  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]\n",
        ),
    ]
    .concat()
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn item(namespace: &str, name: &str, addrs: &[&str], pool: &str) -> ServiceAssignment {
    ServiceAssignment {
        namespace: namespace.into(),
        name: name.into(),
        ips: ips(addrs),
        pool: pool.into(),
    }
}

fn record(dir: &Path) -> AssignmentList {
    let text = std::fs::read_to_string(dir.join(".ferrolb/assignments.yaml"))
        .expect("assignments.yaml written");
    AssignmentList::parse(&text, "assignments.yaml").unwrap()
}

fn status(dir: &Path) -> ControllerStatus {
    let text =
        std::fs::read_to_string(dir.join(".ferrolb/status.yaml")).expect("status.yaml written");
    ControllerStatus::parse(&text).unwrap()
}

fn opts() -> Options {
    Options::default()
}

/// What the first pass over POOLS + services() gives: pools by name (`alpha` first),
/// Services in file order, addresses ascending; the dual-stack Service needs a pool with
/// both families (`beta`).
fn first_assignments() -> Vec<ServiceAssignment> {
    vec![
        item("alpha", "api", &["198.51.100.11"], "alpha"),
        item("default", "db", &["198.51.100.12"], "alpha"),
        item(
            "default",
            "dual",
            &["198.51.100.20", "2001:db8:51::20"],
            "beta",
        ),
        item("zeta", "web", &["198.51.100.10"], "alpha"),
    ]
}

#[test]
fn one_pass_writes_the_record() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "pools.yaml", POOLS);
    write(d, "services.yaml", &services());

    let result = dir::pass(d, &opts()).unwrap();
    assert!(result.file_errors.is_empty(), "{:?}", result.file_errors);
    assert!(
        result.decisions.iter().all(|d| d.error.is_none()),
        "{:?}",
        result.decisions
    );
    assert!(result.wrote_assignments && result.wrote_status);

    let list = record(d);
    assert_eq!(list.api_version, "ferrolb.io/v1beta1");
    assert_eq!(list.kind, "AssignmentList");
    assert_eq!(list.items, first_assignments());
    assert_eq!(result.assignments, list);

    // The file as documented: JSON, one Service per line, sorted.
    let text = std::fs::read_to_string(d.join(".ferrolb/assignments.yaml")).unwrap();
    assert!(
        text.contains(
            "{\"apiVersion\":\"ferrolb.io/v1beta1\",\"kind\":\"AssignmentList\",\"items\":[\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("\"ips\":[\"198.51.100.20\",\"2001:db8:51::20\"]"),
        "{text}"
    );
    let order: Vec<usize> = [
        "\"name\":\"api\"",
        "\"name\":\"db\"",
        "\"name\":\"dual\"",
        "\"name\":\"web\"",
    ]
    .iter()
    .map(|n| {
        text.find(n)
            .unwrap_or_else(|| panic!("{n} missing from {text}"))
    })
    .collect();
    assert!(order.is_sorted(), "{text}");
    // No temporary file left behind.
    let mut names: Vec<_> = std::fs::read_dir(d.join(".ferrolb"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["assignments.yaml", "last-good", "status.yaml"]);

    // The human report and status.yaml tell the same story.
    let report = result.report();
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("default/dual") && l.contains("198.51.100.20,2001:db8:51::20"))
    );
    let st = status(d);
    assert_eq!(st.services.len(), 4);
    assert!(st.files.is_empty() && st.problems.is_empty(), "{st:?}");
    assert_eq!(
        st.pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["alpha", "beta"]
    );

    // A second pass over the same inputs changes nothing and rewrites nothing.
    let mtime = |p: &str| {
        std::fs::metadata(d.join(".ferrolb").join(p))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before = (mtime("assignments.yaml"), mtime("status.yaml"));
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = dir::pass(d, &opts()).unwrap();
    assert!(
        !again.wrote_assignments,
        "unchanged assignments must not be rewritten"
    );
    assert_eq!(record(d).items, first_assignments());
    assert_eq!(mtime("assignments.yaml"), before.0);
}

#[test]
fn a_restart_never_moves_an_address() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "pools.yaml", POOLS);
    write(d, "services.yaml", &services());
    dir::pass(d, &opts()).unwrap();
    assert_eq!(record(d).items, first_assignments());

    // Restart with edits that would change everything if allocation started afresh: a
    // new Service first in the file, the pools listed in the other order, and in a file
    // that now sorts after the Services.
    std::fs::remove_file(d.join("pools.yaml")).unwrap();
    write(d, "zz-pools.yaml", POOLS_REORDERED);
    let newcomer = service("aaa", "new", "");
    let mut reordered = services()
        .split("---\n")
        .filter(|s| !s.is_empty())
        .map(|s| format!("{s}---\n"))
        .collect::<Vec<_>>();
    reordered.reverse();
    write(
        d,
        "services.yaml",
        &format!("{newcomer}{}", reordered.concat()),
    );

    let result = dir::pass(d, &opts()).unwrap();
    assert!(
        result.decisions.iter().all(|d| d.error.is_none()),
        "{:?}",
        result.decisions
    );
    let after = record(d);
    for before in first_assignments() {
        let now = after
            .get(&before.namespace, &before.name)
            .unwrap_or_else(|| panic!("{} lost", before.name));
        assert_eq!(now, &before, "{}/{} moved", before.namespace, before.name);
    }
    assert_eq!(
        after.get("aaa", "new"),
        Some(&item("aaa", "new", &["198.51.100.13"], "alpha"))
    );
    assert_eq!(after.items.len(), 5);

    // Without the record, the same inputs would have given the newcomer 198.51.100.10:
    // it is the record, not luck, that kept the addresses.
    let fresh = tempfile::tempdir().unwrap();
    for f in ["zz-pools.yaml", "services.yaml"] {
        std::fs::copy(d.join(f), fresh.path().join(f)).unwrap();
    }
    dir::pass(fresh.path(), &opts()).unwrap();
    assert_eq!(
        record(fresh.path()).get("aaa", "new").unwrap().ips,
        ips(&["198.51.100.10"])
    );
}

#[test]
fn a_malformed_file_is_named_and_the_others_still_work() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "pools.yaml", POOLS);
    write(d, "services.yaml", &services());
    write(
        d,
        "broken.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: [unclosed\n",
    );

    let result = dir::pass(d, &opts()).unwrap();
    assert_eq!(result.file_errors.len(), 1, "{:?}", result.file_errors);
    let err = &result.file_errors[0];
    assert!(err.file.ends_with("broken.yaml"), "{err:?}");
    assert!(
        err.error.contains("broken.yaml"),
        "the error names the file: {err:?}"
    );
    assert!(!err.error.contains('\n'), "one line: {err:?}");
    assert!(!err.using_last_good);
    assert_eq!(record(d).items, first_assignments());

    // A person sees it: in the --once report and in status.yaml.
    assert!(
        result.report().contains("broken.yaml"),
        "{}",
        result.report()
    );
    let st = status(d);
    assert_eq!(st.files.len(), 1);
    assert!(st.files[0].error.contains("broken.yaml"));

    // A typed error (valid YAML, wrong shape) is named the same way.
    write(
        d,
        "broken.yaml",
        "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: x}\nspec: {addresses: 5}\n",
    );
    let result = dir::pass(d, &opts()).unwrap();
    assert!(
        result.file_errors[0].error.contains("broken.yaml"),
        "{:?}",
        result.file_errors
    );
    assert_eq!(record(d).items, first_assignments());
}

#[test]
fn a_bad_edit_keeps_the_files_last_good_content() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "pools.yaml", POOLS);
    write(d, "services.yaml", &services());
    let mut ctl = DirController::open(d, opts());
    ctl.pass().unwrap();
    assert!(ctl.poll().unwrap().is_none(), "nothing changed");

    // A half-saved edit: the Services of the file's last good read keep their addresses.
    write(
        d,
        "services.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: zeta\n",
    );
    let result = ctl.poll().unwrap().expect("the change is noticed");
    assert_eq!(result.file_errors.len(), 1);
    assert!(result.file_errors[0].error.contains("services.yaml"));
    assert!(result.file_errors[0].using_last_good);
    assert_eq!(record(d).items, first_assignments());

    // The fixed file drops a Service: its address is released, the others stay.
    let fixed = [service("zeta", "web", ""), service("default", "db", "")].concat();
    write(d, "services.yaml", &fixed);
    let result = ctl.poll().unwrap().expect("the change is noticed");
    assert!(result.file_errors.is_empty());
    assert_eq!(
        record(d).items,
        [
            item("default", "db", &["198.51.100.12"], "alpha"),
            item("zeta", "web", &["198.51.100.10"], "alpha")
        ]
    );
    assert!(status(d).files.is_empty());

    // The freed address goes to the next Service that needs one.
    write(d, "more.yaml", &service("alpha", "api2", ""));
    ctl.poll().unwrap().expect("a new file is noticed");
    assert_eq!(
        record(d).get("alpha", "api2").unwrap().ips,
        ips(&["198.51.100.11"])
    );

    // Removing a file counts as a change too.
    std::fs::remove_file(d.join("more.yaml")).unwrap();
    ctl.poll().unwrap().expect("a removed file is noticed");
    assert!(record(d).get("alpha", "api2").is_none());
}

#[test]
fn a_file_broken_while_the_controller_was_down_keeps_its_last_good_content() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "pools.yaml", POOLS);
    write(d, "services.yaml", &services());
    dir::pass(d, &opts()).unwrap();
    let copy = d.join(".ferrolb/last-good/services.yaml");
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), services());
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o077, 0, "copies of inputs are private: {mode:o}");

    // Broken before the restart: the copy stands in for it, nothing is released.
    write(
        d,
        "services.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: [\n",
    );
    let result = dir::pass(d, &opts()).unwrap();
    assert_eq!(result.file_errors.len(), 1);
    assert!(
        result.file_errors[0].using_last_good,
        "{:?}",
        result.file_errors
    );
    assert_eq!(record(d).items, first_assignments());
    assert_eq!(
        std::fs::read_to_string(&copy).unwrap(),
        services(),
        "a bad read never replaces the copy"
    );

    // A file that is gone takes its copy with it.
    std::fs::remove_file(d.join("services.yaml")).unwrap();
    dir::pass(d, &opts()).unwrap();
    assert!(!copy.exists());
    assert!(record(d).items.is_empty());
}

#[test]
fn only_yaml_files_directly_in_the_directory_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "pools.yml", POOLS);
    write(d, "services.yaml", &service("default", "web", ""));
    write(d, ".hidden.yaml", &service("default", "hidden", ""));
    write(d, "notes.txt", &service("default", "notes", ""));
    std::fs::create_dir(d.join("sub")).unwrap();
    write(
        &d.join("sub"),
        "nested.yaml",
        &service("default", "nested", ""),
    );

    let result = dir::pass(d, &opts()).unwrap();
    let names: Vec<&str> = result
        .decisions
        .iter()
        .map(|d| d.key.name.as_str())
        .collect();
    assert_eq!(names, ["web"]);
    assert_eq!(
        record(d).items,
        [item("default", "web", &["198.51.100.10"], "alpha")]
    );
}

#[test]
fn problems_are_visible() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "pools.yaml", POOLS);
    write(
        d,
        "other.yaml",
        "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: elsewhere, namespace: kube-system}\n\
         spec: {addresses: [203.0.113.0/24]}\n---\n\
         apiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2, namespace: ferrolb-system}\n\
         spec: {ipAddressPools: [ghost]}\n",
    );
    // Asks for a pool that does not exist: the engine's error reaches the report.
    write(
        d,
        "services.yaml",
        &service("default", "web", "").replace(
            "metadata: {",
            "metadata: {annotations: {ferrolb.io/address-pool: elsewhere}, ",
        ),
    );

    let result = dir::pass(d, &opts()).unwrap();
    let problems = result.problems.join("\n");
    assert!(
        problems.contains("elsewhere") && problems.contains("kube-system"),
        "{problems}"
    );
    assert!(problems.contains("ghost"), "{problems}");
    let web = &result.decisions[0];
    assert!(web.ips.is_empty() && web.error.is_some(), "{web:?}");
    assert!(result.report().contains(web.error.as_deref().unwrap()));
    let st = status(d);
    assert_eq!(st.problems, result.problems);
    assert_eq!(st.services[0].error, web.error);
    assert!(record(d).items.is_empty());
}

#[test]
fn an_unreadable_directory_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    match dir::pass(&missing, &opts()) {
        Err(e @ PassError::Unreadable { .. }) => assert!(e.to_string().contains("nope"), "{e}"),
        other => panic!("expected Unreadable, got {other:?}"),
    }
}

#[test]
fn a_broken_record_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "pools.yaml", POOLS);
    write(d, "services.yaml", &services());
    std::fs::create_dir(d.join(".ferrolb")).unwrap();
    write(&d.join(".ferrolb"), "assignments.yaml", "kind: Something\n");
    let result = dir::pass(d, &opts()).unwrap();
    assert!(
        result
            .problems
            .iter()
            .any(|p| p.contains("assignments.yaml")),
        "{:?}",
        result.problems
    );
    assert_eq!(record(d).items, first_assignments());
}

/// The README's "run it" directory gives what its services.yaml says.
#[test]
fn the_standalone_example() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/standalone");
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&example).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
        }
    }
    let result = dir::pass(tmp.path(), &opts()).unwrap();
    assert!(
        result.file_errors.is_empty() && result.problems.is_empty(),
        "{}",
        result.report()
    );
    assert!(
        result.decisions.iter().all(|d| d.error.is_none()),
        "{}",
        result.report()
    );
    assert_eq!(
        record(tmp.path()).items,
        [
            item("default", "legacy-api", &["198.51.100.16"], "reserved"),
            item(
                "default",
                "web",
                &["198.51.100.200", "2001:db8:51::200"],
                "lan"
            ),
            item(
                "ingress-nginx",
                "ingress-nginx-controller",
                &["198.51.100.210"],
                "lan"
            ),
            item("mail", "imaps", &["198.51.100.201"], "lan"),
            item("mail", "smtp", &["198.51.100.201"], "lan"),
            item("shop", "storefront", &["198.51.100.64"], "shop"),
        ]
    );
}
