//! `?acl` documents: an `AccessControlPolicy` body read into the canned ACL it is equivalent
//! to (for providers that take canned ACLs but no grants), and the policy s3ferry answers for
//! providers without an ACL API (the owner's full control, which is all they enforce).

use quick_xml::Reader;
use quick_xml::events::Event;

use super::RewriteError;

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
const LOG_DELIVERY: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";

/// One `<Grant>`: who (owner id, group URI, email) and what.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    /// `ID` of a CanonicalUser grantee.
    pub id: Option<String>,
    /// `URI` of a Group grantee.
    pub uri: Option<String>,
    /// `EmailAddress` of an AmazonCustomerByEmail grantee.
    pub email: Option<String>,
    pub permission: String,
}

/// An `AccessControlPolicy`: its owner id and grants.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessControlPolicy {
    pub owner_id: Option<String>,
    pub grants: Vec<Grant>,
}

pub fn parse_access_control_policy(xml: &[u8]) -> Result<AccessControlPolicy, RewriteError> {
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut policy = AccessControlPolicy::default();
    let mut grant = Grant::default();
    loop {
        match reader.read_event_into(&mut buf)? {
            Event::Eof => break,
            Event::Start(e) => path.push(e.local_name().as_ref().to_vec()),
            Event::End(e) => {
                if e.local_name().as_ref() == b"Grant" {
                    policy.grants.push(std::mem::take(&mut grant));
                }
                path.pop();
            }
            Event::Text(t) => {
                let text = t.unescape()?.trim().to_string();
                let parent = path.len().checked_sub(2).and_then(|i| path.get(i)).map(Vec::as_slice);
                match (parent, path.last().map(Vec::as_slice)) {
                    (Some(b"Owner"), Some(b"ID")) => policy.owner_id = Some(text),
                    (Some(b"Grantee"), Some(b"ID")) => grant.id = Some(text),
                    (Some(b"Grantee"), Some(b"URI")) => grant.uri = Some(text),
                    (Some(b"Grantee"), Some(b"EmailAddress")) => grant.email = Some(text),
                    (Some(b"Grant"), Some(b"Permission")) => grant.permission = text,
                    _ => {}
                }
            }
            _ => {}
        }
        buf.clear();
    }
    Ok(policy)
}

impl AccessControlPolicy {
    /// The canned ACL that grants exactly this (besides the owner's own full control), if any.
    pub fn canned_equivalent(&self) -> Option<&'static str> {
        let mut others: Vec<(&str, &str)> = Vec::new();
        for g in &self.grants {
            let owner_grant = g.id.is_some() && g.id == self.owner_id && g.permission == "FULL_CONTROL";
            if owner_grant {
                continue;
            }
            let group = g.uri.as_deref()?;
            others.push((group, g.permission.as_str()));
        }
        others.sort_unstable();
        let canned = match others.as_slice() {
            [] => "private",
            [(ALL_USERS, "READ")] => "public-read",
            [(ALL_USERS, "READ"), (ALL_USERS, "WRITE")] => "public-read-write",
            [(AUTHENTICATED_USERS, "READ")] => "authenticated-read",
            [(LOG_DELIVERY, "READ_ACP"), (LOG_DELIVERY, "WRITE")] => "log-delivery-write",
            _ => return None,
        };
        Some(canned)
    }
}

/// The policy of a provider without ACLs: `owner` has full control, nobody else anything.
pub fn render_owner_only_policy(owner: &str) -> String {
    let owner = quick_xml::escape::escape(owner);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<AccessControlPolicy xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
<Owner><ID>{owner}</ID><DisplayName>{owner}</DisplayName></Owner><AccessControlList><Grant>\
<Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\">\
<ID>{owner}</ID><DisplayName>{owner}</DisplayName></Grantee><Permission>FULL_CONTROL</Permission>\
</Grant></AccessControlList></AccessControlPolicy>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::xml_fixture as fixture;

    #[test]
    fn policies_read_into_their_canned_equivalent() {
        for (file, canned) in [
            ("acl-private.xml", Some("private")),
            ("acl-public-read.xml", Some("public-read")),
            ("acl-public-read-write.xml", Some("public-read-write")),
            ("acl-authenticated-read.xml", Some("authenticated-read")),
            ("acl-user-grant.xml", None),
        ] {
            let policy = parse_access_control_policy(&fixture(file)).expect(file);
            assert_eq!(policy.canned_equivalent(), canned, "{file}: {policy:?}");
        }
    }

    #[test]
    fn a_public_read_policy_is_parsed_grant_by_grant() {
        let policy = parse_access_control_policy(&fixture("acl-public-read.xml")).expect("parses");
        assert_eq!(
            policy.owner_id.as_deref(),
            Some("75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a")
        );
        assert_eq!(
            policy.grants[1],
            Grant {
                uri: Some(ALL_USERS.into()),
                permission: "READ".into(),
                ..Grant::default()
            }
        );
    }

    #[test]
    fn the_owner_only_policy_is_golden_and_reads_back_as_private() {
        let xml = render_owner_only_policy("s3ferry");
        let expected = String::from_utf8(fixture("acl-owner-only.xml")).expect("utf8");
        assert_eq!(xml, expected.trim_end());
        let policy = parse_access_control_policy(xml.as_bytes()).expect("parses");
        assert_eq!(policy.canned_equivalent(), Some("private"));
    }
}
