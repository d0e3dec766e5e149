//! What the test suites need from the machine, and the one switch that decides
//! whether a missing need skips a test or fails it.
//!
//! Some tests need more than loopback sockets: a network namespace (root and
//! iproute2), an IPv6 loopback, a raised open-file limit, the kernel's socket
//! table (`ss`), tshark. On a developer's machine a test whose need is missing
//! prints why and passes, so the rest of the suite stays useful. In CI that
//! would make a green run claim more than it tested, so CI sets
//! `TNLM_REQUIRE=all` and every such skip becomes a failure naming the test.
//!
//! `TNLM_REQUIRE` is `all` or a comma-separated list of [`Need::name`]s
//! (`netns,ipv6`). The older `TNLM_REQUIRE_TSHARK=1` still means `tshark`,
//! and `TNLM_REQUIRE_CC=1` means `cc`.

use std::fmt::Display;

/// Something a test needs from the machine that a developer's machine may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Creating network namespaces and veth pairs (`ip netns add`: root and iproute2).
    Netns,
    /// An IPv6 loopback (`::1`) to bind and connect to.
    Ipv6,
    /// An open-file limit high enough for the test (raised up to the hard limit if needed).
    OpenFiles,
    /// Reading the kernel's per-connection TCP counters (`ss` from iproute2, Linux).
    SocketTable,
    /// tshark, dumpcap with capture rights, and text2pcap.
    Tshark,
    /// A C compiler (`cc`, or `$CC`), for the C client of examples/c-client.
    CCompiler,
}

impl Need {
    /// Every need, for listing them in messages and docs.
    pub const ALL: [Need; 6] =
        [Need::Netns, Need::Ipv6, Need::OpenFiles, Need::SocketTable, Need::Tshark, Need::CCompiler];

    /// The name used in `TNLM_REQUIRE`.
    pub fn name(self) -> &'static str {
        match self {
            Need::Netns => "netns",
            Need::Ipv6 => "ipv6",
            Need::OpenFiles => "open-files",
            Need::SocketTable => "socket-table",
            Need::Tshark => "tshark",
            Need::CCompiler => "cc",
        }
    }

    /// True when the environment says this need must be met (a missing one fails).
    pub fn is_required(self) -> bool {
        let listed = std::env::var("TNLM_REQUIRE").unwrap_or_default();
        let legacy = match self {
            Need::Tshark => "TNLM_REQUIRE_TSHARK",
            Need::CCompiler => "TNLM_REQUIRE_CC",
            _ => "",
        };
        let legacy_set = !legacy.is_empty() && std::env::var(legacy).is_ok_and(|v| v == "1");
        legacy_set || required_by(&listed, self)
    }

    /// Reports that `test` cannot check what it is for because this need is
    /// missing (`why`): panics, naming the test, when the need is required;
    /// otherwise prints a `SKIP` line on stderr so the skip is never silent.
    pub fn missing(self, test: &str, why: impl Display) {
        let name = self.name();
        assert!(!self.is_required(), "{test}: needs {name}, which TNLM_REQUIRE makes mandatory here, but: {why}");
        eprintln!("SKIP {test}: needs {name}: {why} (TNLM_REQUIRE={name} or =all makes this a failure)");
    }
}

/// Whether the `TNLM_REQUIRE` value `listed` names `need` (or says `all`).
fn required_by(listed: &str, need: Need) -> bool {
    listed.split(',').map(str::trim).any(|item| item == "all" || item == need.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_needs_or_all() {
        assert!(required_by("all", Need::Netns));
        assert!(required_by("ipv6, netns", Need::Netns));
        assert!(!required_by("ipv6", Need::Netns));
        assert!(!required_by("", Need::Tshark));
        assert!(!required_by("netnsx", Need::Netns));
        let names: Vec<&str> = Need::ALL.iter().map(|n| n.name()).collect();
        assert_eq!(names, ["netns", "ipv6", "open-files", "socket-table", "tshark", "cc"]);
    }
}
