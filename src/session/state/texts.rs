//! The fixed multi-line texts of FEAT (RFC 2389) and HELP.

use crate::proto::codes::*;
use crate::proto::Reply;
use crate::vfs::listing::Facts;

/// The extensions FEAT advertises, one per line (RFC 2389): only what is
/// implemented.
pub(super) fn feat_reply(facts: Facts, tls: bool) -> Reply {
    let mut text = String::from("Features:\n");
    // RFC 4217 section 6: AUTH TLS, PBSZ and PROT, when TLS is offered.
    let (auth, pbsz, prot) = match tls {
        true => (Some("AUTH TLS"), Some("PBSZ"), Some("PROT")),
        false => (None, None, None),
    };
    for f in [
        auth.map(str::to_string),
        Some("EPRT".to_string()),
        Some("EPSV".to_string()),
        Some("HOST".to_string()),
        Some("MDTM".to_string()),
        Some("MFMT".to_string()),
        Some(facts.feat_line()),
        Some("PASV".to_string()),
        pbsz.map(str::to_string),
        prot.map(str::to_string),
        Some("REST STREAM".to_string()),
        Some("SIZE".to_string()),
        Some("TVFS".to_string()),
        Some("UTF8".to_string()),
    ]
    .into_iter()
    .flatten()
    {
        text.push(' ');
        text.push_str(&f);
        text.push('\n');
    }
    text.push_str("End");
    Reply::new(SYSTEM_STATUS, text)
}

pub(super) fn help_reply() -> Reply {
    Reply::new(
        HELP,
        "The following commands are recognized.\n\
         ABOR ACCT ALLO APPE AUTH CCC  CDUP CWD  DELE EPRT EPSV FEAT HELP\n\
         HOST LIST MDTM MFMT MKD  MLSD MLST MODE NLST NOOP OPTS PASS PASV\n\
         PBSZ PORT PROT PWD  QUIT REIN REST RETR RMD  RNFR RNTO SITE SIZE\n\
         STAT STOR STOU STRU SYST TYPE USER XCUP XCWD XMKD XPWD XRMD\n\
         Help OK.",
    )
}
