//! The wire names of roles: how a [`Role`] is spelled in tokens, event
//! metadata (`actor.role`), exports and the GraphQL enum. One spelling,
//! here; the serde form of [`Role`] is the same (a test holds them together).

use std::fmt;
use std::str::FromStr;

use crate::values::Role;

impl Role {
    /// Every role, in declaration order.
    pub const ALL: [Role; 7] = [
        Role::Admin,
        Role::Head,
        Role::EducationStaff,
        Role::Teacher,
        Role::Guardian,
        Role::Student,
        Role::Auditor,
    ];

    /// The role as it is written on the wire and in the log.
    pub const fn wire_name(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::Head => "HEAD",
            Role::EducationStaff => "EDUCATION_STAFF",
            Role::Teacher => "TEACHER",
            Role::Guardian => "GUARDIAN",
            Role::Student => "STUDENT",
            Role::Auditor => "AUDITOR",
        }
    }
}

/// A role name that is none of [`Role::ALL`]'s wire names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.wire_name() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_the_serde_form_and_parse_back() {
        for role in Role::ALL {
            assert_eq!(
                serde_json::to_value(role).ok(),
                Some(serde_json::Value::String(role.wire_name().into()))
            );
            assert_eq!(role.wire_name().parse::<Role>(), Ok(role));
            assert_eq!(role.to_string(), role.wire_name());
        }
        let names: std::collections::BTreeSet<_> = Role::ALL.map(Role::wire_name).into();
        assert_eq!(names.len(), Role::ALL.len(), "no two roles share a name");
    }

    #[test]
    fn other_spellings_are_refused() {
        for s in ["guardian", "Guardian", "", "PARENT", " GUARDIAN"] {
            assert_eq!(s.parse::<Role>(), Err(UnknownRole(s.into())));
        }
    }
}
