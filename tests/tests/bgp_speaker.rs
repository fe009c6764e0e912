//! `ferrolb-speaker` in BGP mode against BIRD 2 in network namespaces, end to end: the
//! Service's route reaches the router with the advertisement's communities and is
//! withdrawn when the Service goes. The features one by one are in `bgp_features.rs`.
//!
//! The test builds its own namespaces (`flbt-<tag>-<pid>-…`, see
//! `ferrolb_tests::bgp::netns`) and a site directory the speaker reads
//! (`--source dir:`, written by the test as the controller would), through
//! `ferrolb_tests::bgp::testbed`. The speaker binary is built by the first test that
//! needs it. Root only (skipped loudly otherwise); needs `bird2 frr gobgpd exabgp`.

use ferrolb_tests::bgp::site::NODE_AS;
use ferrolb_tests::bgp::testbed::{Site, ready, wait_routes};
use serde_json::json;

#[test]
fn bird_gets_the_service_route_and_loses_it_when_the_service_goes() {
    if !ready("bird_gets_the_service_route_and_loses_it_when_the_service_goes") {
        return;
    }
    let mut s = Site::with_router(
        "sp-bird",
        json!({}),
        json!({"communities": ["64512:100", "large:64512:1:2"]}),
    );
    let bird = s.bird(s.neighbor(), |_| {});
    s.start();
    let r = s.wait_web(&bird);
    assert_eq!(r[0].as_path, [NODE_AS]);
    assert_eq!(r[0].communities, ["64512:100"]);
    assert_eq!(r[0].large_communities, ["64512:1:2"]);
    assert_eq!(r[0].peer, Some(s.node()));

    s.services(&[]);
    wait_routes("BIRD after the Service is deleted", &[], || {
        bird.routes().unwrap()
    });
}
