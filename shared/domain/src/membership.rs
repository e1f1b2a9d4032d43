//! Organization membership: what a role, a set of teams and a set of granted scopes add up to.
//!
//! A session's scopes are not stored: they are derived here from the user's membership each
//! time the session is authenticated, and then decided by [`crate::scopes::Grants::decide`]
//! like any token's. So there is still one authorization decision; this module only says which
//! scopes a membership yields.
//!
//! - `admin`: the granted scopes as they are. A resource-level scope (`clusters:write`) reaches
//!   every team of the organization, which is also what makes the member an organization admin
//!   (teams, invitations, members).
//! - `member`: resource-level scopes are narrowed to the member's teams
//!   (`clusters:write` with teams `[payments]` → `team:payments:clusters:write`); team scopes
//!   must name one of its teams. A member never reaches a team it was not given.

use std::fmt;
use std::str::FromStr;

use crate::error::ValidationErrors;
use crate::names::name_problem;
use crate::scopes::Scope;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            _ => Err("must be 'admin' or 'member'".into()),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A membership grant as requested (an invitation, or a change to a member).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipGrant {
    pub role: Role,
    pub teams: Vec<String>,
    pub scopes: Vec<Scope>,
}

impl MembershipGrant {
    /// Parses and checks a requested grant, reporting problems under `/role`, `/teams/{i}` and
    /// `/scopes/{i}`. Team existence and the caller's ceiling are checked by the caller of this
    /// function (they need storage and the caller's grants).
    pub fn parse(
        role: &str,
        teams: &[String],
        scopes: &[String],
    ) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let role = match role.parse::<Role>() {
            Ok(role) => Some(role),
            Err(message) => {
                errors.add("/role", message);
                None
            }
        };
        for (i, team) in teams.iter().enumerate() {
            if let Err(message) = name_problem(team) {
                errors.add(format!("/teams/{i}"), message);
            } else if teams[..i].contains(team) {
                errors.add(format!("/teams/{i}"), "is listed twice");
            }
        }
        let mut parsed = Vec::new();
        for (i, raw) in scopes.iter().enumerate() {
            let field = format!("/scopes/{i}");
            match raw.parse::<Scope>() {
                Err(e) => errors.add(field, e.to_string()),
                // Break-glass stays with tokens minted by bootstrap; no membership carries it.
                Ok(Scope::AdminAll) => errors.add(field, "admin:all cannot be granted to a member"),
                Ok(Scope::Team { ref team, .. }) if !teams.contains(team) => errors.add(
                    field,
                    format!("names team '{team}', which is not among the member's teams"),
                ),
                Ok(scope) => parsed.push(scope),
            }
        }
        if role == Some(Role::Member) && teams.is_empty() && !parsed.is_empty() {
            errors.add(
                "/teams",
                "a member needs at least one team for its scopes to reach",
            );
        }
        errors.into_result()?;
        Ok(Self {
            role: role.unwrap_or(Role::Member),
            teams: teams.to_vec(),
            scopes: parsed,
        })
    }

    /// The scopes this membership yields (see the module docs).
    pub fn effective_scopes(&self) -> Vec<Scope> {
        effective_scopes(self.role, &self.teams, &self.scopes)
    }
}

/// The scopes a membership yields, deduplicated, in a stable order.
pub fn effective_scopes(role: Role, teams: &[String], granted: &[Scope]) -> Vec<Scope> {
    let mut out: Vec<Scope> = Vec::new();
    let mut push = |scope: Scope| {
        if !out.contains(&scope) {
            out.push(scope);
        }
    };
    for scope in granted {
        match (role, scope) {
            (_, Scope::AdminAll) => {}
            (Role::Admin, scope) => push(scope.clone()),
            (Role::Member, Scope::Resource { resource, action }) => {
                for team in teams {
                    push(Scope::Team {
                        team: team.clone(),
                        resource: *resource,
                        action: *action,
                    });
                }
            }
            (Role::Member, Scope::Team { team, .. }) if teams.contains(team) => push(scope.clone()),
            (Role::Member, Scope::Team { .. }) => {}
        }
    }
    out
}

/// Parses stored scopes leniently: one that no longer parses grants nothing.
pub fn parse_stored(scopes: &[String]) -> Vec<Scope> {
    scopes.iter().filter_map(|s| s.parse().ok()).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// What the grant's holder may do at the organization level (`Grants::org_level`).
    fn org_level(grant: &MembershipGrant) -> Option<crate::scopes::Action> {
        let scopes: Vec<String> = grant
            .effective_scopes()
            .iter()
            .map(ToString::to_string)
            .collect();
        crate::scopes::Grants::parse(&scopes, Some("org".into())).org_level()
    }

    fn shown(scopes: &[Scope]) -> Vec<String> {
        scopes.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_member_reaches_only_its_teams() {
        let grant = MembershipGrant::parse(
            "member",
            &strings(&["payments", "search"]),
            &strings(&["clusters:write", "team:search:routes:read"]),
        )
        .unwrap();
        assert_eq!(
            shown(&grant.effective_scopes()),
            strings(&[
                "team:payments:clusters:write",
                "team:search:clusters:write",
                "team:search:routes:read"
            ])
        );
    }

    #[test]
    fn an_admin_keeps_org_wide_scopes() {
        let grant =
            MembershipGrant::parse("admin", &[], &strings(&["clusters:write", "routes:read"]))
                .unwrap();
        assert_eq!(
            shown(&grant.effective_scopes()),
            strings(&["clusters:write", "routes:read"])
        );
        assert_eq!(org_level(&grant), Some(crate::scopes::Action::Write));
    }

    #[test]
    fn a_member_is_never_an_org_admin() {
        let grant = MembershipGrant::parse(
            "member",
            &strings(&["payments"]),
            &strings(&["clusters:write"]),
        )
        .unwrap();
        assert_eq!(org_level(&grant), None);
    }

    #[test]
    fn bad_grants_name_their_fields() {
        let errors = MembershipGrant::parse(
            "owner",
            &strings(&["Bad", "ok", "ok"]),
            &strings(&["admin:all", "team:other:clusters:read", "nope"]),
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "/role",
                "/teams/0",
                "/teams/2",
                "/scopes/0",
                "/scopes/1",
                "/scopes/2"
            ]
        );
    }

    #[test]
    fn a_member_with_scopes_needs_a_team() {
        let errors =
            MembershipGrant::parse("member", &[], &strings(&["clusters:read"])).unwrap_err();
        assert_eq!(errors.errors()[0].field, "/teams");
    }
}
