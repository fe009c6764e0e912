//! `ferrolb-controller plan`: what the controller would assign, computed by the same
//! engine from YAML files, without a cluster. Services that already show addresses are
//! existing assignments (kept while valid, moved with a reason otherwise); the rest are
//! allocated in input order.

use std::collections::BTreeMap;
use std::io::Write;

use ferrolb_crds::validate::check_pools;
use serde::Serialize;

use crate::allocator::ServiceKey;
use crate::cli::{Output, PlanArgs};
use crate::engine::{Action, Engine, EngineConfig};
use crate::model::{self, Inputs};

/// One line of the plan. JSON output has exactly these keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Row {
    pub namespace: String,
    pub name: String,
    pub ips: Vec<String>,
    pub pool: Option<String>,
    pub error: Option<String>,
    /// Why existing addresses move (table output only).
    #[serde(skip)]
    pub note: Option<String>,
}

/// Input the plan cannot work from; the message names the object.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error(transparent)]
    Load(#[from] model::LoadError),
    #[error("{0}")]
    InvalidPool(String),
}

/// Loads files into one set of inputs, in the order given.
pub fn load(files: &[std::path::PathBuf]) -> Result<Inputs, PlanError> {
    let mut inputs = Inputs::default();
    for f in files {
        let path = f.display().to_string();
        let text = std::fs::read_to_string(f).map_err(|e| PlanError::Read {
            path: path.clone(),
            message: e.to_string(),
        })?;
        inputs.parse(&text, &path)?;
    }
    Ok(inputs)
}

/// Computes the plan: one row per LoadBalancer Service handled, in input order.
pub fn plan(inputs: &Inputs, lb_class: Option<&str>) -> Result<Vec<Row>, PlanError> {
    let check = check_pools(&inputs.pools);
    if let Some(p) = check.problems.first() {
        return Err(PlanError::InvalidPool(p.to_string()));
    }
    let mut engine = Engine::new(EngineConfig {
        lb_class: lb_class.map(String::from),
    });
    engine.set_namespaces(inputs.namespace_labels());
    engine.set_pools(&inputs.pools);
    let (decisions, actions) = engine.resync(&inputs.services);
    let mut notes: BTreeMap<ServiceKey, String> = BTreeMap::new();
    for a in actions {
        if let Action::Event {
            namespace,
            name,
            reason,
            message,
            ..
        } = a
            && reason == "ClearAssignment"
        {
            notes.insert(ServiceKey { namespace, name }, message);
        }
    }
    let mut by_key: BTreeMap<ServiceKey, _> =
        decisions.into_iter().map(|d| (d.key.clone(), d)).collect();
    Ok(inputs
        .services
        .iter()
        .filter_map(|s| {
            let d = by_key.remove(&model::service_key(s))?;
            Some(Row {
                note: notes.remove(&d.key),
                namespace: d.key.namespace,
                name: d.key.name,
                ips: d.ips.iter().map(ToString::to_string).collect(),
                pool: d.pool,
                error: d.error,
            })
        })
        .collect())
}

/// Renders rows as an aligned table.
pub fn table(rows: &[Row]) -> String {
    let mut lines = vec![
        ["NAMESPACE", "NAME", "IPS", "POOL", "STATUS"]
            .map(String::from)
            .to_vec(),
    ];
    for r in rows {
        let status = match (&r.error, &r.note) {
            (Some(e), _) => format!("pending: {e}"),
            (None, Some(n)) => format!("moved: {n}"),
            (None, None) => "ok".into(),
        };
        let ips = if r.ips.is_empty() {
            "<pending>".to_string()
        } else {
            r.ips.join(",")
        };
        lines.push(vec![
            r.namespace.clone(),
            r.name.clone(),
            ips,
            r.pool.clone().unwrap_or_else(|| "-".into()),
            status,
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for l in lines {
        for (i, w) in widths.iter().enumerate() {
            out.push_str(&format!("{:<w$}   ", l[i], w = *w));
        }
        out.push_str(&l[4]);
        out.push('\n');
    }
    out
}

/// Runs the subcommand; returns the exit code (2 for input that cannot be planned).
pub fn run(args: &PlanArgs) -> i32 {
    let rows = load(&args.files).and_then(|inputs| plan(&inputs, args.lb_class.as_deref()));
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let text = match args.output {
        Output::Table => table(&rows),
        Output::Json => match serde_json::to_string_pretty(&rows) {
            Ok(s) => s + "\n",
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        },
    };
    let mut out = std::io::stdout().lock();
    if out.write_all(text.as_bytes()).is_err() {
        return 1;
    }
    0
}
