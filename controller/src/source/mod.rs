//! Where the controller's inputs come from and where its results go: the Kubernetes API
//! ([`kube`]) or a directory of YAML files ([`dir`]).

pub mod dir;
pub mod kube;
