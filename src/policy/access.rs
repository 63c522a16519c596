//! Who may pass by Entra groups and app roles: `[access]`, checked at
//! sign-in and whenever a session is read again, and a `[[routes]]`
//! entry's `require_groups` / `require_roles`, checked at each request it
//! matches. A rule is two lists: any one of the groups admits (no groups:
//! no group rule), and any one of the roles admits (no roles: no role
//! rule); with both, both must.

use std::fmt;

/// Groups and roles a person must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirement {
    pub groups: Vec<String>,
    pub roles: Vec<String>,
}

/// What a person holds, as their token (or Microsoft Graph) said.
pub struct Held<'a> {
    pub groups: &'a [String],
    pub roles: &'a [String],
    /// The token left the groups out (Entra's overage) and they are not
    /// known: no group rule can admit.
    pub groups_unknown: bool,
}

/// Why a requirement refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// In none of the groups.
    Group,
    /// Holds none of the roles.
    Role,
    /// The groups are not known (too many for the token, not looked up).
    GroupsUnknown,
}

impl Refused {
    /// A short label for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::Group => "not_in_allowed_group",
            Refused::Role => "no_allowed_role",
            Refused::GroupsUnknown => "groups_unknown",
        }
    }

    /// What the person is told.
    pub fn message(self) -> &'static str {
        match self {
            Refused::Group => "Your account is not in a group that may use this.",
            Refused::Role => "Your account does not have a role that may use this.",
            Refused::GroupsUnknown => {
                "Your account is in too many groups for the sign-in to list them, and they could not be looked up."
            }
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl Requirement {
    /// Whether anything is required at all.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.roles.is_empty()
    }

    /// Whether `held` meets this requirement. Group IDs are compared as
    /// Entra writes them (object IDs, case-insensitive); roles exactly.
    pub fn admits(&self, held: &Held<'_>) -> Result<(), Refused> {
        if !self.groups.is_empty() {
            if held.groups_unknown {
                return Err(Refused::GroupsUnknown);
            }
            let member = held
                .groups
                .iter()
                .any(|g| self.groups.iter().any(|want| want.eq_ignore_ascii_case(g)));
            if !member {
                return Err(Refused::Group);
            }
        }
        if !self.roles.is_empty() && !held.roles.iter().any(|r| self.roles.contains(r)) {
            return Err(Refused::Role);
        }
        Ok(())
    }

    /// What is wrong with the lists as configured: an empty or blank entry.
    pub fn problem(&self) -> Option<String> {
        if self.groups.iter().any(|g| g.trim().is_empty()) {
            return Some("holds an empty group ID".into());
        }
        if self.roles.iter().any(|r| r.trim().is_empty()) {
            return Some("holds an empty role".into());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn held<'a>(groups: &'a [String], roles: &'a [String]) -> Held<'a> {
        Held {
            groups,
            roles,
            groups_unknown: false,
        }
    }

    #[test]
    fn any_group_and_any_role_admit_and_both_rules_must_hold() {
        let r = Requirement {
            groups: list(&["6F1C0000-aaaa", "g2"]),
            roles: list(&["Console.User"]),
        };
        let (g, roles) = (list(&["x", "6f1c0000-AAAA"]), list(&["Console.User"]));
        assert_eq!(r.admits(&held(&g, &roles)), Ok(()));
        assert_eq!(r.admits(&held(&list(&["x"]), &roles)), Err(Refused::Group));
        assert_eq!(
            r.admits(&held(&g, &list(&["console.user"]))),
            Err(Refused::Role),
            "roles compare exactly"
        );
        assert_eq!(Requirement::default().admits(&held(&[], &[])), Ok(()));
    }

    #[test]
    fn unknown_groups_never_meet_a_group_rule() {
        let r = Requirement {
            groups: list(&["g1"]),
            roles: vec![],
        };
        let g = list(&["g1"]);
        let unknown = Held {
            groups: &g,
            roles: &[],
            groups_unknown: true,
        };
        assert_eq!(r.admits(&unknown), Err(Refused::GroupsUnknown));
        let roles_only = Requirement {
            groups: vec![],
            roles: list(&["R"]),
        };
        let unknown_with_role = Held {
            groups: &[],
            roles: &list(&["R"]),
            groups_unknown: true,
        };
        assert_eq!(roles_only.admits(&unknown_with_role), Ok(()));
    }

    #[test]
    fn blank_entries_are_named() {
        let r = Requirement {
            groups: list(&["g1", " "]),
            roles: vec![],
        };
        assert!(r.problem().unwrap().contains("empty group ID"));
    }
}
