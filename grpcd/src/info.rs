//! GetInfo's lists (issue 16): the RPCs served and the algorithms, derived from the served
//! descriptor so that a new RPC (e.g. the pairs service's) is listed without anyone remembering to.

use std::sync::OnceLock;

use prost::Message;

use crate::pb;

/// (service full name, method names) of every service in hftlab.proto.
fn services() -> &'static [(String, Vec<String>)] {
    static S: OnceLock<Vec<(String, Vec<String>)>> = OnceLock::new();
    S.get_or_init(|| {
        let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set compiled into grpcd decodes");
        let mut out = Vec::new();
        for f in &set.file {
            for s in &f.service {
                let full = format!("{}.{}", f.package(), s.name());
                out.push((
                    full,
                    s.method.iter().map(|m| m.name().to_string()).collect(),
                ));
            }
        }
        out
    })
}

/// "hftlab.v1.HftLab/GetInfo", … for every method of every service.
pub fn rpcs() -> &'static [String] {
    static R: OnceLock<Vec<String>> = OnceLock::new();
    R.get_or_init(|| {
        services()
            .iter()
            .flat_map(|(s, ms)| ms.iter().map(move |m| format!("{s}/{m}")))
            .collect()
    })
}

/// "ScanPairs" -> "scan_pairs".
fn snake(name: &str) -> String {
    let mut o = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                o.push('_');
            }
            o.push(c.to_ascii_lowercase());
        } else {
            o.push(c);
        }
    }
    o
}

/// The HftLab service's algorithm names (`base`, hand-written: "hmm", "portfolio", …), then every
/// method of the pairs service (snake_case) not already listed.
pub fn algorithms(base: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let pairs = services()
        .iter()
        .filter(|(s, _)| s.ends_with(".HftLabPairs"))
        .flat_map(|(_, ms)| ms.iter().map(|m| snake(m)));
    for name in base.iter().map(|s| s.to_string()).chain(pairs) {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// Optional transport features on offer: "shared_memory" when grpcd offers it.
pub fn features() -> Vec<String> {
    let mut f = Vec::new();
    if crate::shm::dir().is_some() {
        f.push("shared_memory".to_string());
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_of_both_services_is_listed() {
        let r = rpcs();
        for want in [
            "hftlab.v1.HftLab/GetInfo",
            "hftlab.v1.HftLab/OptimizePortfolio",
            "hftlab.v1.HftLab/StreamHmmFilter",
            "hftlab.v1.HftLabPairs/ScanPairs",
            "hftlab.v1.HftLabPairs/WalkForward",
        ] {
            assert!(r.iter().any(|x| x == want), "{want} missing from {r:?}");
        }
    }

    #[test]
    fn pairs_methods_become_algorithm_names_once() {
        assert_eq!(snake("ScanPairs"), "scan_pairs");
        assert_eq!(snake("Johansen"), "johansen");
        let a = algorithms(&["hmm", "scan_pairs"]);
        assert_eq!(a[0], "hmm");
        assert_eq!(a.iter().filter(|x| *x == "scan_pairs").count(), 1);
        for want in ["johansen", "kalman_hedge", "walk_forward"] {
            assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
        }
    }
}
