//! The router namespace's BGP daemon: BIRD 2 (default) or FRR, configured to accept a
//! session from any node of the LAN (dynamic neighbours), import everything, and install
//! equal routes from several nodes as one ECMP route in its kernel table.
//!
//! Configuration text and command lines are built here (pure); [`crate::up`] writes and
//! starts them. Session state is parsed from the daemons' own output.

use std::path::Path;

use crate::topology::{LAN4, LAN4_LEN, LAN6, LAN6_LEN, NODE_ASN, ROUTER_ASN, Topology};

/// Which BGP daemon runs in `flb-router`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RouterKind {
    Bird,
    Frr,
    /// The router namespace only forwards.
    None,
}

impl RouterKind {
    pub fn name(self) -> &'static str {
        match self {
            RouterKind::Bird => "bird",
            RouterKind::Frr => "frr",
            RouterKind::None => "none",
        }
    }
}

/// Where FRR's daemons live on Debian.
pub const FRR_DIR: &str = "/usr/lib/frr";

/// BIRD 2's configuration. Dynamic BGP: `neighbor range` accepts any node of the LAN
/// (sessions named `dyn1`, `dyn2`, … over IPv4 and `dynv6_1`, … over IPv6). eBGP needs
/// explicit `import all` (RFC 8212). `merge paths on` turns the routes of several nodes
/// into one multipath route in the namespace's FIB. Fast timers, so a frozen speaker is
/// noticed in 9 s (a dead one at once: its TCP session closes).
pub fn bird_conf(topology: &Topology) -> String {
    let r = &topology.router;
    let timers = "hold time 9; keepalive time 3; connect delay time 1; connect retry time 1; error wait time 1, 5;";
    format!(
        "# Written by ferrolb-lab: BIRD in the lab's router namespace (flb-router).
log stderr all;
router id {v4};

protocol device {{
  scan time 10;
}}

protocol direct {{
  ipv4;
  ipv6;
  interface \"eth0\";
}}

# Routes learnt over BGP go to the kernel; equal ones from several nodes as one ECMP route.
protocol kernel kernel4 {{
  ipv4 {{ import none; export where source = RTS_BGP; }};
  merge paths on;
}}

protocol kernel kernel6 {{
  ipv6 {{ import none; export where source = RTS_BGP; }};
  merge paths on;
}}

# Every node of the LAN may open a session (passively accepted).
protocol bgp nodes {{
  local {v4} as {ROUTER_ASN};
  neighbor range {LAN4}/{LAN4_LEN} as {NODE_ASN};
  dynamic name \"dyn\";
  {timers}
  ipv4 {{ import all; export none; }};
  ipv6 {{ import all; export none; }};
}}

protocol bgp nodes_v6 {{
  local {v6} as {ROUTER_ASN};
  neighbor range {LAN6}/{LAN6_LEN} as {NODE_ASN};
  dynamic name \"dynv6_\";
  {timers}
  ipv6 {{ import all; export none; }};
}}
",
        v4 = r.ipv4,
        v6 = r.ipv6,
    )
}

/// `bird -f -c CONF -s CTL -P PID` (foreground: the lab keeps its pid and log).
pub fn bird_argv(dir: &Path) -> Vec<String> {
    vec![
        "bird".into(),
        "-f".into(),
        "-c".into(),
        dir.join("bird.conf").display().to_string(),
        "-s".into(),
        dir.join("bird.ctl").display().to_string(),
        "-P".into(),
        dir.join("bird.pid").display().to_string(),
    ]
}

/// `birdc -s CTL ARGS…`.
pub fn birdc_argv(dir: &Path, args: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "birdc".to_string(),
        "-s".into(),
        dir.join("bird.ctl").display().to_string(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    argv
}

/// FRR's `zebra.conf`: nothing but a name (zebra only moves routes to the kernel).
pub fn zebra_conf() -> String {
    "! Written by ferrolb-lab.\nhostname flb-router\n".into()
}

/// FRR's `bgpd.conf`: the same policy as [`bird_conf`] (listen ranges, accept all,
/// multipath, fast timers).
pub fn bgpd_conf(topology: &Topology) -> String {
    let r = &topology.router;
    format!(
        "! Written by ferrolb-lab: FRR bgpd in the lab's router namespace (flb-router).
frr defaults traditional
hostname flb-router
!
router bgp {ROUTER_ASN}
 bgp router-id {v4}
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 timers bgp 3 9
 neighbor nodes peer-group
 neighbor nodes remote-as {NODE_ASN}
 neighbor nodes6 peer-group
 neighbor nodes6 remote-as {NODE_ASN}
 bgp listen range {LAN4}/{LAN4_LEN} peer-group nodes
 bgp listen range {LAN6}/{LAN6_LEN} peer-group nodes6
 !
 address-family ipv4 unicast
  neighbor nodes activate
  maximum-paths 64
 exit-address-family
 !
 address-family ipv6 unicast
  neighbor nodes activate
  neighbor nodes6 activate
  maximum-paths 64
 exit-address-family
exit
!
",
        v4 = r.ipv4,
    )
}

/// `/usr/lib/frr/DAEMON -f CONF -i PID -z DIR/zserv.api --vty_socket DIR -P 0`: runs as
/// the `frr` user, so `dir` must belong to `frr:frr`.
pub fn frr_argv(dir: &Path, daemon: &str) -> Vec<String> {
    vec![
        format!("{FRR_DIR}/{daemon}"),
        "-f".into(),
        dir.join(format!("{daemon}.conf")).display().to_string(),
        "-i".into(),
        dir.join(format!("{daemon}.pid")).display().to_string(),
        "-z".into(),
        dir.join("zserv.api").display().to_string(),
        "--vty_socket".into(),
        dir.display().to_string(),
        "-P".into(),
        "0".into(),
    ]
}

/// `vtysh --vty_socket DIR -c CMD`.
pub fn vtysh_argv(dir: &Path, command: &str) -> Vec<String> {
    vec![
        "vtysh".into(),
        "--vty_socket".into(),
        dir.display().to_string(),
        "-c".into(),
        command.into(),
    ]
}

/// One BGP session as the router sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Session {
    /// BIRD's protocol name (`dyn1`) or FRR's neighbour address.
    pub name: String,
    /// `Established`, `Active`, `Connect`, …
    pub state: String,
}

/// The dynamic sessions in `birdc show protocols` output (the templates `nodes` /
/// `nodes_v6` themselves are left out).
pub fn parse_bird_protocols(text: &str) -> Vec<Session> {
    text.lines()
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let name = cols.next()?;
            if cols.next()? != "BGP" || !name.starts_with("dyn") {
                return None;
            }
            // name proto table state since info: info is the last column.
            let state = line.split_whitespace().nth(5).unwrap_or("?");
            Some(Session {
                name: name.into(),
                state: state.into(),
            })
        })
        .collect()
}

/// The neighbours in FRR's `show bgp summary json` (all address families).
pub fn parse_frr_summary(json: &str) -> Vec<Session> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let mut sessions: Vec<Session> = Vec::new();
    for family in v.as_object().into_iter().flat_map(|o| o.values()) {
        for (peer, info) in family["peers"].as_object().into_iter().flatten() {
            if sessions.iter().any(|s| &s.name == peer) {
                continue;
            }
            sessions.push(Session {
                name: peer.clone(),
                state: info["state"].as_str().unwrap_or("?").into(),
            });
        }
    }
    sessions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bird_accepts_every_node_and_merges_paths() {
        let c = bird_conf(&Topology::new(3));
        assert!(c.contains("router id 198.51.100.1;"));
        assert!(c.contains("local 198.51.100.1 as 64500;"));
        assert!(c.contains("neighbor range 198.51.100.0/24 as 64512;"));
        assert!(c.contains("neighbor range 2001:db8:51::/64 as 64512;"));
        assert!(c.contains("dynamic name \"dyn\";"));
        assert_eq!(c.matches("merge paths on;").count(), 2);
        assert_eq!(c.matches("import all;").count(), 3);
        assert!(c.contains("hold time 9;"));
    }

    #[test]
    fn frr_listens_on_both_ranges() {
        let c = bgpd_conf(&Topology::new(2));
        assert!(c.contains("no bgp ebgp-requires-policy"));
        assert!(c.contains("bgp listen range 198.51.100.0/24 peer-group nodes\n"));
        assert!(c.contains("bgp listen range 2001:db8:51::/64 peer-group nodes6\n"));
        assert!(c.contains("maximum-paths 64"));
    }

    #[test]
    fn command_lines() {
        let dir = Path::new("/run/ferrolb-lab/router");
        assert_eq!(
            bird_argv(dir).join(" "),
            "bird -f -c /run/ferrolb-lab/router/bird.conf -s /run/ferrolb-lab/router/bird.ctl -P /run/ferrolb-lab/router/bird.pid"
        );
        assert_eq!(
            birdc_argv(dir, &["show", "status"]).join(" "),
            "birdc -s /run/ferrolb-lab/router/bird.ctl show status"
        );
        assert_eq!(
            frr_argv(dir, "bgpd").join(" "),
            "/usr/lib/frr/bgpd -f /run/ferrolb-lab/router/bgpd.conf -i /run/ferrolb-lab/router/bgpd.pid -z /run/ferrolb-lab/router/zserv.api --vty_socket /run/ferrolb-lab/router -P 0"
        );
    }

    #[test]
    fn bird_sessions_from_show_protocols() {
        let text = "BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     10:00:00.000
kernel4    Kernel     master4    up     10:00:00.000
nodes      BGP        ---        start  10:00:00.000  Passive
nodes_v6   BGP        ---        start  10:00:00.000  Passive
dyn1       BGP        ---        up     10:00:01.000  Established
dynv6_1    BGP        ---        start  10:00:01.000  Active        Socket: Connection closed
";
        assert_eq!(
            parse_bird_protocols(text),
            [
                Session {
                    name: "dyn1".into(),
                    state: "Established".into()
                },
                Session {
                    name: "dynv6_1".into(),
                    state: "Active".into()
                },
            ]
        );
    }

    #[test]
    fn frr_sessions_from_summary_json() {
        let json = r#"{"ipv4Unicast":{"peers":{"198.51.100.11":{"state":"Established"}}},
                      "ipv6Unicast":{"peers":{"198.51.100.11":{"state":"Established"},"2001:db8:51::12":{"state":"Active"}}}}"#;
        let s = parse_frr_summary(json);
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].name, "2001:db8:51::12");
        assert_eq!(s[1].state, "Active");
        assert!(parse_frr_summary("not json").is_empty());
    }
}
