//! Scopes and the one authorization decision built on them.
//!
//! `admin:all` > `{resource}:{action}` (every team of the caller's organization) >
//! `team:{team}:{resource}:{action}`. Write implies read.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeResource {
    Tokens,
    Clusters,
    Routes,
    Listeners,
    Filters,
    Secrets,
    Dataplanes,
    ApiDefinitions,
    LearningSessions,
    Reports,
    Mcp,
}

impl ScopeResource {
    pub const ALL: [ScopeResource; 11] = [
        Self::Tokens,
        Self::Clusters,
        Self::Routes,
        Self::Listeners,
        Self::Filters,
        Self::Secrets,
        Self::Dataplanes,
        Self::ApiDefinitions,
        Self::LearningSessions,
        Self::Reports,
        Self::Mcp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tokens => "tokens",
            Self::Clusters => "clusters",
            Self::Routes => "routes",
            Self::Listeners => "listeners",
            Self::Filters => "filters",
            Self::Secrets => "secrets",
            Self::Dataplanes => "dataplanes",
            Self::ApiDefinitions => "api-definitions",
            Self::LearningSessions => "learning-sessions",
            Self::Reports => "reports",
            Self::Mcp => "mcp",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Read,
    Write,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            _ => None,
        }
    }

    /// Whether holding `self` permits `wanted`.
    fn permits(self, wanted: Action) -> bool {
        self == Action::Write || wanted == Action::Read
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    AdminAll,
    Resource {
        resource: ScopeResource,
        action: Action,
    },
    Team {
        team: String,
        resource: ScopeResource,
        action: Action,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid scope '{0}': expected admin:all, {{resource}}:{{read|write}} or team:{{team}}:{{resource}}:{{read|write}}"
)]
pub struct InvalidScope(pub String);

impl FromStr for Scope {
    type Err = InvalidScope;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidScope(s.to_string());
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["admin", "all"] => Ok(Scope::AdminAll),
            [resource, action] => Ok(Scope::Resource {
                resource: ScopeResource::parse(resource).ok_or_else(bad)?,
                action: Action::parse(action).ok_or_else(bad)?,
            }),
            ["team", team, resource, action] => {
                crate::names::name_problem(team).map_err(|_| bad())?;
                Ok(Scope::Team {
                    team: (*team).to_string(),
                    resource: ScopeResource::parse(resource).ok_or_else(bad)?,
                    action: Action::parse(action).ok_or_else(bad)?,
                })
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::AdminAll => f.write_str("admin:all"),
            Scope::Resource { resource, action } => {
                write!(f, "{}:{}", resource.as_str(), action.as_str())
            }
            Scope::Team {
                team,
                resource,
                action,
            } => write!(f, "team:{team}:{}:{}", resource.as_str(), action.as_str()),
        }
    }
}

/// Where a team sits, as far as authorization cares.
#[derive(Debug, Clone, Copy)]
pub struct TeamRef<'a> {
    pub name: &'a str,
    pub org_id: &'a str,
}

/// The caller's scopes, bound to the one organization they apply in.
///
/// Every scope but `admin:all` belongs to the credential's organization: a resource-level
/// scope reaches that organization's teams, a team scope reaches its team only when the team
/// is in that organization. The binding lives here, in the only type that answers "may this
/// caller…", so no path can honour, mint or grant a scope outside the organization whatever
/// it stored. The fields are private for that reason: read them through the methods. The
/// default grants nothing.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    scopes: Vec<Scope>,
    /// `None` (a platform credential) reaches no team except through `admin:all`.
    org_id: Option<String>,
}

/// The teams a query may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeamFilter {
    All,
    /// Teams of `org_id`: all of them with `whole_org`, else only those named.
    InOrg {
        org_id: String,
        whole_org: bool,
        names: Vec<String>,
    },
    None,
}

/// The outcome of one authorization decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// The caller can see the team but lacks this permission: 403.
    Forbidden,
    /// The caller cannot see the team at all: 404, never revealing that it exists.
    Hidden,
}

impl Grants {
    pub fn parse(scopes: &[String], org_id: Option<String>) -> Self {
        // Stored scopes were validated on the way in; one that no longer parses grants nothing.
        let scopes = scopes.iter().filter_map(|s| s.parse().ok()).collect();
        Self {
            scopes,
            org_id: org_id.filter(|o| !o.is_empty()),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.scopes.contains(&Scope::AdminAll)
    }

    /// The organization every scope but `admin:all` applies in.
    pub fn org_id(&self) -> Option<&str> {
        self.org_id.as_deref()
    }

    /// Whether these grants apply in `org_id` at all (`admin:all` aside).
    pub fn in_org(&self, org_id: &str) -> bool {
        self.org_id.as_deref() == Some(org_id)
    }

    /// The scopes as held, for showing them back to their holder.
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// What the caller may do at the level of its organization (its teams, members and
    /// invitations): any resource-level scope reads it, a writing one also changes it;
    /// `None` with team scopes only. `admin:all` is the platform's, not an organization's.
    pub fn org_level(&self) -> Option<Action> {
        self.scopes
            .iter()
            .filter_map(|s| match s {
                Scope::Resource { action, .. } => Some(*action),
                _ => None,
            })
            .max_by_key(|a| *a == Action::Write)
    }

    /// Whether the caller holds any scope on `resource` (in any team of its organization).
    pub fn holds_any(&self, resource: ScopeResource) -> bool {
        self.is_admin()
            || self.scopes.iter().any(|s| match s {
                Scope::Resource { resource: r, .. } | Scope::Team { resource: r, .. } => {
                    *r == resource
                }
                Scope::AdminAll => false,
            })
    }

    /// Whether a scope names `resource` with `action` for the team named `team` (for some
    /// team when `None`), by the precedence of [`Grants::decide`] but without looking the team
    /// up: the gate a channel keeps in front of calls (MCP takes `mcp:write` to call a tool),
    /// each of which config then authorizes in full, organization included.
    pub fn holds(&self, resource: ScopeResource, team: Option<&str>, action: Action) -> bool {
        self.is_admin()
            || self.scopes.iter().any(|s| match s {
                Scope::Resource {
                    resource: r,
                    action: a,
                } => *r == resource && a.permits(action),
                Scope::Team {
                    team: t,
                    resource: r,
                    action: a,
                } => team.is_none_or(|team| team == t) && *r == resource && a.permits(action),
                Scope::AdminAll => false,
            })
    }

    /// Whether `admin:all` is the only thing that allows this: the caller's other scopes would
    /// not. Such a use is break-glass access to a tenant and gets audited.
    pub fn only_admin_allows(
        &self,
        team: TeamRef<'_>,
        resource: ScopeResource,
        action: Action,
    ) -> bool {
        if !self.is_admin() {
            return false;
        }
        let others = Grants {
            scopes: self
                .scopes
                .iter()
                .filter(|s| **s != Scope::AdminAll)
                .cloned()
                .collect(),
            org_id: self.org_id.clone(),
        };
        others.decide(team, resource, action) != Access::Allowed
    }

    /// The single authorization decision for team-owned resources.
    pub fn decide(&self, team: TeamRef<'_>, resource: ScopeResource, action: Action) -> Access {
        if self.is_admin() {
            return Access::Allowed;
        }
        if !self.in_org(team.org_id) {
            return Access::Hidden;
        }
        let mut sees_team = false;
        for scope in &self.scopes {
            let (r, a) = match scope {
                Scope::Resource { resource, action } => (resource, action),
                Scope::Team {
                    team: t,
                    resource,
                    action,
                } if t == team.name => (resource, action),
                _ => continue,
            };
            sees_team = true;
            if *r == resource && a.permits(action) {
                return Access::Allowed;
            }
        }
        if sees_team
            && action == Action::Write
            && self.decide(team, resource, Action::Read) == Access::Allowed
        {
            Access::Forbidden
        } else {
            Access::Hidden
        }
    }

    /// Which teams a list of `resource` may read: the data layer takes this filter, so a list
    /// query cannot forget to scope itself.
    pub fn readable_teams(&self, resource: ScopeResource) -> TeamFilter {
        self.team_filter(|r| r == resource)
    }

    /// The teams any of the caller's scopes reach, whatever the resource: what it sees of an
    /// organization's teams and of the audit trail.
    pub fn visible_teams(&self) -> TeamFilter {
        self.team_filter(|_| true)
    }

    fn team_filter(&self, wanted: impl Fn(ScopeResource) -> bool) -> TeamFilter {
        if self.is_admin() {
            return TeamFilter::All;
        }
        let Some(org_id) = self.org_id.clone() else {
            return TeamFilter::None;
        };
        let mut whole_org = false;
        let mut names = Vec::new();
        for scope in &self.scopes {
            match scope {
                Scope::Resource { resource, .. } if wanted(*resource) => whole_org = true,
                Scope::Team { team, resource, .. } if wanted(*resource) => names.push(team.clone()),
                _ => {}
            }
        }
        if !whole_org && names.is_empty() {
            return TeamFilter::None;
        }
        names.sort_unstable();
        names.dedup();
        TeamFilter::InOrg {
            org_id,
            whole_org,
            names,
        }
    }

    /// Whether the caller may hand `requested` to a credential or membership of `org_id`
    /// (for a team scope, the organization its team is in): only within the caller's own
    /// organization, and never beyond the caller's own scopes. A token can never be minted,
    /// widened or granted past its creator's reach.
    pub fn covers(&self, requested: &Scope, org_id: &str) -> bool {
        if self.is_admin() {
            return true;
        }
        if !self.in_org(org_id) {
            return false;
        }
        self.scopes.iter().any(|held| match (held, requested) {
            (
                Scope::Resource {
                    resource: r,
                    action: a,
                },
                Scope::Resource { resource, action },
            )
            | (
                Scope::Resource {
                    resource: r,
                    action: a,
                },
                Scope::Team {
                    resource, action, ..
                },
            ) => r == resource && a.permits(*action),
            (
                Scope::Team {
                    team: t,
                    resource: r,
                    action: a,
                },
                Scope::Team {
                    team,
                    resource,
                    action,
                },
            ) => t == team && r == resource && a.permits(*action),
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(scopes: &[&str], org: Option<&str>) -> Grants {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        Grants::parse(&scopes, org.map(String::from))
    }

    const TEAM_A: TeamRef<'static> = TeamRef {
        name: "team-a",
        org_id: "org-1",
    };
    const TEAM_B: TeamRef<'static> = TeamRef {
        name: "team-b",
        org_id: "org-1",
    };
    const OTHER_ORG: TeamRef<'static> = TeamRef {
        name: "team-x",
        org_id: "org-2",
    };

    #[test]
    fn scopes_round_trip() {
        for s in [
            "admin:all",
            "clusters:read",
            "team:my-org-default:routes:write",
            "api-definitions:write",
        ] {
            let scope: Scope = s.parse().expect("parses");
            assert_eq!(scope.to_string(), s);
        }
        for s in [
            "admin",
            "clusters:delete",
            "nope:read",
            "team:x:clusters",
            "team:Bad:clusters:read",
        ] {
            assert!(s.parse::<Scope>().is_err(), "{s}");
        }
    }

    #[test]
    fn admin_reaches_everything() {
        let g = grants(&["admin:all"], None);
        assert_eq!(
            g.decide(OTHER_ORG, ScopeResource::Clusters, Action::Write),
            Access::Allowed
        );
    }

    #[test]
    fn team_scope_reaches_only_its_team() {
        let g = grants(&["team:team-a:clusters:write"], Some("org-1"));
        assert_eq!(
            g.decide(TEAM_A, ScopeResource::Clusters, Action::Write),
            Access::Allowed
        );
        assert_eq!(
            g.decide(TEAM_A, ScopeResource::Clusters, Action::Read),
            Access::Allowed
        );
        assert_eq!(
            g.decide(TEAM_B, ScopeResource::Clusters, Action::Read),
            Access::Hidden
        );
        assert_eq!(
            g.decide(TEAM_A, ScopeResource::Listeners, Action::Read),
            Access::Hidden
        );
    }

    #[test]
    fn read_only_scope_is_forbidden_to_write_but_sees() {
        let g = grants(&["team:team-a:clusters:read"], Some("org-1"));
        assert_eq!(
            g.decide(TEAM_A, ScopeResource::Clusters, Action::Read),
            Access::Allowed
        );
        assert_eq!(
            g.decide(TEAM_A, ScopeResource::Clusters, Action::Write),
            Access::Forbidden
        );
    }

    #[test]
    fn resource_scope_stays_inside_its_org() {
        let g = grants(&["clusters:read"], Some("org-1"));
        assert_eq!(
            g.decide(TEAM_B, ScopeResource::Clusters, Action::Read),
            Access::Allowed
        );
        assert_eq!(
            g.decide(OTHER_ORG, ScopeResource::Clusters, Action::Read),
            Access::Hidden
        );
    }

    #[test]
    fn covers_never_widens() {
        let g = grants(
            &["team:team-a:clusters:write", "routes:read"],
            Some("org-1"),
        );
        let ok = |s: &str| g.covers(&s.parse().expect("scope"), "org-1");
        assert!(ok("team:team-a:clusters:read"));
        assert!(ok("team:team-b:routes:read"));
        assert!(!ok("team:team-b:clusters:read"));
        assert!(!ok("routes:write"));
        assert!(!ok("admin:all"));
    }

    #[test]
    fn covers_never_crosses_organizations() {
        let g = grants(&["clusters:write", "tokens:write"], Some("org-1"));
        let scope = |s: &str| s.parse::<Scope>().expect("scope");
        assert!(g.covers(&scope("team:team-x:clusters:read"), "org-1"));
        assert!(!g.covers(&scope("team:team-x:clusters:read"), "org-2"));
        assert!(!g.covers(&scope("clusters:read"), "org-2"));
        let platform = grants(&["clusters:write"], None);
        assert!(!platform.covers(&scope("team:team-x:clusters:read"), "org-2"));
        let admin = grants(&["admin:all"], None);
        assert!(admin.covers(&scope("team:team-x:clusters:read"), "org-2"));
    }

    #[test]
    fn team_scope_of_another_organization_grants_nothing() {
        // A credential of org-1 that somehow holds a scope naming org-2's team (stored before
        // the binding, or written by hand) reaches nothing there.
        let g = grants(&["team:team-x:clusters:write"], Some("org-1"));
        assert_eq!(
            g.decide(OTHER_ORG, ScopeResource::Clusters, Action::Read),
            Access::Hidden
        );
        assert_eq!(
            g.readable_teams(ScopeResource::Clusters),
            TeamFilter::InOrg {
                org_id: "org-1".into(),
                whole_org: false,
                names: vec!["team-x".into()],
            }
        );
        let orgless = grants(&["team:team-x:clusters:write"], None);
        assert_eq!(
            orgless.decide(OTHER_ORG, ScopeResource::Clusters, Action::Read),
            Access::Hidden
        );
        assert_eq!(
            orgless.readable_teams(ScopeResource::Clusters),
            TeamFilter::None
        );
    }

    #[test]
    fn visible_teams_spans_resources() {
        let g = grants(&["team:team-a:clusters:read", "routes:read"], Some("org-1"));
        assert_eq!(
            g.visible_teams(),
            TeamFilter::InOrg {
                org_id: "org-1".into(),
                whole_org: true,
                names: vec!["team-a".into()],
            }
        );
        assert_eq!(
            grants(&["admin:all"], None).visible_teams(),
            TeamFilter::All
        );
    }

    #[test]
    fn only_admin_allows_marks_break_glass_use() {
        let team = TeamRef {
            name: "a-default",
            org_id: "org-a",
        };
        let scopes =
            |list: &[&str]| -> Vec<String> { list.iter().map(|s| s.to_string()).collect() };
        let admin = Grants::parse(&scopes(&["admin:all"]), None);
        assert!(admin.only_admin_allows(team, ScopeResource::Clusters, Action::Read));
        let admin_and_team = Grants::parse(
            &scopes(&["admin:all", "team:a-default:clusters:read"]),
            Some("org-a".into()),
        );
        assert!(!admin_and_team.only_admin_allows(team, ScopeResource::Clusters, Action::Read));
        assert!(admin_and_team.only_admin_allows(team, ScopeResource::Clusters, Action::Write));
        let team_only = Grants::parse(
            &scopes(&["team:a-default:clusters:write"]),
            Some("org-a".into()),
        );
        assert!(!team_only.only_admin_allows(team, ScopeResource::Clusters, Action::Write));
    }
}
