//! Checks on the generated dissector that need neither Lua nor Wireshark: the committed
//! `wireshark/tnlm.lua` is up to date, uses only Lua constructs that Wireshark 4.0 (Lua 5.2)
//! through 4.4+ (Lua 5.4) all accept, names every filter field the design requires, and the
//! README's field table is current. If `luac5.1` … `luac5.4` are installed, each must parse it.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use tnlm_core::schema::{self, Field, Wire};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn committed() -> String {
    std::fs::read_to_string(crate_dir().join("tnlm.lua")).unwrap_or_default()
}

/// True when CI asks for every external tool to be present (no skipping):
/// the Lua compilers go with tshark (`TNLM_REQUIRE=tshark` or `all`).
fn tools_required() -> bool {
    tnlm_core::requirement::Need::Tshark.is_required()
}

#[test]
fn committed_dissector_is_up_to_date() {
    let generated = tnlm_wireshark::generate();
    assert!(
        committed() == generated,
        "{} is stale (or missing): regenerate it with `{}` and commit the result",
        tnlm_wireshark::LUA_PATH,
        tnlm_wireshark::REGENERATE
    );
}

/// Output that depended on the process (its id, hash seeds, working directory,
/// time zone, locale) would differ between runs; two generator processes that
/// differ in all of these must write what this process generates.
#[test]
fn committed_coloring_rules_are_up_to_date() {
    let committed = std::fs::read_to_string(crate_dir().join("tnlm.colorfilters")).unwrap_or_default();
    assert!(
        committed == tnlm_wireshark::colorfilters(),
        "{} is stale (or missing): regenerate it with `{}` and commit the result",
        tnlm_wireshark::COLORFILTERS_PATH,
        tnlm_wireshark::REGENERATE
    );
    let profile = std::fs::read_to_string(crate_dir().join("profiles").join("TNLM").join("colorfilters"));
    assert!(
        profile.unwrap_or_default() == tnlm_wireshark::install::profile_colorfilters(None),
        "{} is stale (or missing): regenerate it with `{}` and commit the result",
        tnlm_wireshark::install::PROFILE_COLORFILTERS_PATH,
        tnlm_wireshark::REGENERATE
    );
    let fields: Vec<String> = tnlm_wireshark::fields().into_iter().map(|f| f.abbrev).collect();
    for line in committed.lines().filter(|l| l.starts_with('@')) {
        let filter = line.split('@').nth(2).unwrap();
        let first = filter.split_whitespace().next().unwrap();
        assert!(
            fields.iter().any(|f| f == first) || first.starts_with("tnlm.expert."),
            "coloring rule {line:?} names an unknown field"
        );
    }
}

#[test]
fn generation_is_deterministic() {
    let dir = std::env::temp_dir().join(format!("tnlm-determinism-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let here = tnlm_wireshark::generate();
    for (run, (cwd, tz, lang)) in
        [(&dir, "UTC", "C"), (&crate_dir(), "Asia/Shanghai", "zh_CN.UTF-8")].into_iter().enumerate()
    {
        let out = dir.join(format!("run{run}.lua"));
        let status = Command::new(env!("CARGO_BIN_EXE_tnlm-wireshark"))
            .arg(&out)
            .current_dir(cwd)
            .env("TZ", tz)
            .env("LANG", lang)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        assert!(
            std::fs::read_to_string(&out).unwrap() == here,
            "run {run} (TZ={tz}, in {}) generated other text",
            cwd.display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The code of a Lua chunk with comments and string literals blanked out.
fn code_only(lua: &str) -> String {
    let mut out = String::with_capacity(lua.len());
    let mut chars = lua.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' | '\'' => {
                out.push_str("\"\"");
                while let Some(s) = chars.next() {
                    if s == '\\' {
                        chars.next();
                    } else if s == c {
                        break;
                    }
                }
            }
            '[' if chars.peek() == Some(&'[') => panic!("long strings/comments are not expected in tnlm.lua"),
            c => out.push(c),
        }
    }
    out
}

#[test]
fn only_constructs_every_supported_lua_accepts() {
    let lua = tnlm_wireshark::generate();
    let code = code_only(&lua);
    for (line_no, line) in code.lines().enumerate() {
        let context = || format!("line {}: {}", line_no + 1, lua.lines().nth(line_no).unwrap_or(""));
        for token in ["//", "&", "|", "<<", ">>", "::", "goto", "bit32", "utf8.", "math.type", "math.pow", "loadstring"]
        {
            assert!(!line.contains(token), "`{token}` is not portable across Lua 5.2 and 5.4: {}", context());
        }
        for token in ["string.pack", "string.unpack", "setfenv", "getfenv", "module(", "table.getn", "UInt64("] {
            assert!(!line.contains(token), "`{token}` must not be used: {}", context());
        }
        for (at, _) in line.match_indices('~') {
            assert_eq!(line.as_bytes().get(at + 1), Some(&b'='), "`~` (5.3+ xor/not): {}", context());
        }
        // Global `unpack` is 5.1/5.2 only; `table.unpack` 5.2+.
        for (at, _) in line.match_indices("unpack(") {
            assert!(line[..at].ends_with("table."), "global unpack: {}", context());
        }
        // Lua numbers must not hold 64-bit values: no 64-bit readers other than through UInt64.
        for token in [":uint64(", ":int64(", ":le_int64(", ":float(", ":le_float("] {
            assert!(!line.contains(token), "`{token}`: {}", context());
        }
    }
}

#[test]
fn luac_of_every_lua_version_parses_it() {
    let dir = std::env::temp_dir().join(format!("tnlm-luac-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("tnlm.lua");
    std::fs::write(&file, tnlm_wireshark::generate()).unwrap();
    let mut checked = Vec::new();
    for version in ["5.1", "5.2", "5.3", "5.4"] {
        let luac = format!("luac{version}");
        match Command::new(&luac).arg("-p").arg(&file).output() {
            Ok(out) => {
                assert!(out.status.success(), "{luac} -p rejects tnlm.lua: {}", String::from_utf8_lossy(&out.stderr));
                checked.push(luac);
            }
            Err(err) => {
                assert!(!tools_required(), "{luac} is required (TNLM_REQUIRE=tshark) but cannot run: {err}");
                eprintln!("SKIP {luac}: not installed ({err}); apt-get install lua{version}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("parsed with: {checked:?}");
}

#[test]
fn design_filter_fields_exist() {
    let fields: Vec<String> = tnlm_wireshark::fields().into_iter().map(|f| f.abbrev).collect();
    for required in [
        "tnlm.version",
        "tnlm.type",
        "tnlm.class",
        "tnlm.request_id",
        "tnlm.length",
        "tnlm.time",
        "tnlm.name",
        "tnlm.client.id",
        "tnlm.client.ip",
        "tnlm.client.ipv6",
        "tnlm.client.port",
        "tnlm.client.since",
        "tnlm.msg.to",
        "tnlm.msg.from",
        "tnlm.msg.from_ip",
        "tnlm.msg.text",
        "tnlm.status",
        "tnlm.reason",
        "tnlm.error.code",
        "tnlm.error.text",
    ] {
        assert!(fields.iter().any(|f| f == required), "{required} is missing from the dissector");
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in &fields {
        assert!(f.starts_with("tnlm."), "{f}");
        assert!(seen.insert(f.clone()), "{f} registered twice");
    }
}

fn wire_kind(wire: Wire) -> String {
    match wire {
        Wire::List(item, _) => format!("List({item})"),
        other => format!("{other:?}"),
    }
}

fn collect<'a>(fields: &'a [Field], by_filter: &mut BTreeMap<&'a str, Vec<(String, &'a str)>>) {
    for f in fields {
        by_filter.entry(f.filter).or_default().push((wire_kind(f.wire), f.name));
        if let Wire::List(_, item) = f.wire {
            collect(item, by_filter);
        }
    }
}

#[test]
fn fields_sharing_a_filter_share_wire_type_and_name() {
    let mut by_filter = BTreeMap::new();
    for m in schema::catalog() {
        collect(m.fields, &mut by_filter);
    }
    for (filter, uses) in &by_filter {
        assert!(uses.windows(2).all(|w| w[0] == w[1]), "tnlm.{filter} is used with different wire types: {uses:?}");
        assert!(!schema::HEADER.iter().any(|h| h.name == *filter), "tnlm.{filter} collides with a header field");
    }
}

#[test]
fn every_payload_has_an_info_summary() {
    let summarized: Vec<&str> = tnlm_wireshark::summarized().collect();
    for m in schema::catalog() {
        if !m.fields.is_empty() {
            assert!(summarized.contains(&m.payload), "{} has no Info summary in wireshark/src/lib.rs", m.payload);
        }
    }
}

#[test]
fn ip_families_match_the_encoder() {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use tnlm_core::message::Forwarded;
    use tnlm_core::{Frame, HEADER_LEN};
    let addrs: [IpAddr; 2] = [Ipv4Addr::new(1, 2, 3, 4).into(), Ipv6Addr::LOCALHOST.into()];
    for ((variant, _, size), ip) in schema::IP_FAMILIES.into_iter().zip(addrs) {
        let frame = Frame::indication(Forwarded { from: 1, from_ip: ip, from_port: 2, text: String::new() });
        let bytes = frame.to_bytes().unwrap();
        let at = HEADER_LEN + 4;
        assert_eq!(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()), variant);
        assert_eq!(bytes.len(), HEADER_LEN + 4 + 4 + size + 2 + 8);
    }
}

fn readme() -> String {
    std::fs::read_to_string(crate_dir().join("README.md")).unwrap_or_default()
}

#[test]
fn readme_field_table_is_current() {
    let readme = readme();
    let spliced = tnlm_wireshark::splice_readme(&readme);
    assert!(spliced.is_some(), "wireshark/README.md lacks the generated field table markers");
    assert!(
        spliced.as_deref() == Some(readme.as_str()),
        "the field table in wireshark/README.md is stale: regenerate it with `{}`",
        tnlm_wireshark::REGENERATE
    );
}

#[test]
fn main_writes_the_file_to_a_given_path() {
    let dir = std::env::temp_dir().join(format!("tnlm-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out.lua");
    let status = Command::new(env!("CARGO_BIN_EXE_tnlm-wireshark")).arg(&out).status().unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), tnlm_wireshark::generate());
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}
