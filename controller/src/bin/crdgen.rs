//! Writes FerroLB's CRD manifests (and their kustomization) to a directory, by default
//! `crds/manifests`.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "crds/manifests".into()),
    );
    std::fs::create_dir_all(&dir)?;
    for (name, body) in ferrolb_crds::manifests()? {
        let path = dir.join(&name);
        std::fs::write(&path, body)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
