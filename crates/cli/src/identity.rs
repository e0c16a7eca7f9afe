//! `modelgate users|groups|service-principals ...`: SCIM identities.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::Client;
use crate::commands::{Listing, at, find, print_json, print_list, resolve, s, set};
use crate::{CliError, Output};

const SCIM: &str = "/api/2.0/preview/scim/v2";

/// `modelgate permissions ...`
#[derive(Subcommand)]
pub enum PermissionsCmd {
    /// Show the permissions of an object.
    Get {
        /// Object type: serving-endpoints or registered-models.
        object_type: ObjectType,
        /// Endpoint id or name, or model name.
        id: String,
    },
    /// Replace every direct permission: --json '{"access_control_list": [...]}'.
    Set {
        /// Object type: serving-endpoints or registered-models.
        object_type: ObjectType,
        /// Endpoint id or name, or model name.
        id: String,
        #[command(flatten)]
        json: crate::commands::JsonArg,
    },
    /// Add or change permissions: --json '{"access_control_list": [{"group_name": "ml", "permission_level": "CAN_QUERY"}]}'.
    Update {
        /// Object type: serving-endpoints or registered-models.
        object_type: ObjectType,
        /// Endpoint id or name, or model name.
        id: String,
        #[command(flatten)]
        json: crate::commands::JsonArg,
    },
    /// List the permission levels of an object.
    GetPermissionLevels {
        /// Object type: serving-endpoints or registered-models.
        object_type: ObjectType,
        /// Endpoint id or name, or model name.
        id: String,
    },
}

/// Objects that carry permissions.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ObjectType {
    /// Serving endpoints (by id or name).
    ServingEndpoints,
    /// Registered models (by name).
    RegisteredModels,
}

impl ObjectType {
    /// Where the Permissions API keeps this type's objects.
    fn base(self) -> &'static str {
        match self {
            ObjectType::ServingEndpoints => "/api/2.0/permissions/serving-endpoints",
            ObjectType::RegisteredModels => "/api/2.0/permissions/registered-models",
        }
    }
}

/// Runs a `permissions` command.
pub async fn permissions(client: &Client, cmd: PermissionsCmd, output: Output) -> Result<(), CliError> {
    match cmd {
        PermissionsCmd::Get { object_type, id } => {
            let v = client.json(Method::GET, &format!("{}/{id}", object_type.base()), None).await?;
            print_list(&v, output, "access_control_list", &["Principal", "Kind", "Level", "Inherited"], |e| {
                let (who, kind) = if !at(e, "/user_name").is_null() {
                    (s(at(e, "/user_name")), "user")
                } else if !at(e, "/group_name").is_null() {
                    (s(at(e, "/group_name")), "group")
                } else {
                    (s(at(e, "/service_principal_name")), "service principal")
                };
                let p = at(e, "/all_permissions/0");
                vec![who, kind.into(), s(at(p, "/permission_level")), s(at(p, "/inherited"))]
            });
        }
        PermissionsCmd::Set { object_type, id, json } => {
            let body = crate::commands::read_json(&json, true)?;
            print_json(&client.json(Method::PUT, &format!("{}/{id}", object_type.base()), Some(&body)).await?);
        }
        PermissionsCmd::Update { object_type, id, json } => {
            let body = crate::commands::read_json(&json, true)?;
            print_json(&client.json(Method::PATCH, &format!("{}/{id}", object_type.base()), Some(&body)).await?);
        }
        PermissionsCmd::GetPermissionLevels { object_type, id } => {
            let path = format!("{}/{id}/permissionLevels", object_type.base());
            print_json(&client.json(Method::GET, &path, None).await?)
        }
    }
    Ok(())
}

/// `modelgate users ...`
#[derive(Subcommand)]
pub enum UsersCmd {
    /// List users.
    List {
        /// SCIM filter, e.g. 'userName sw "a"'.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Show one user.
    Get {
        /// User id or name.
        id: String,
    },
    /// Create a user.
    Create {
        /// Login name (an e-mail address).
        user_name: String,
        /// Display name.
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Deactivate or reactivate a user.
    SetActive {
        /// User id or name.
        id: String,
        /// true or false.
        #[arg(action = clap::ArgAction::Set)]
        active: bool,
    },
    /// Set (or remove) the password a user signs in to the web console with, where the server
    /// enables password sign-in (`serve --console-password-sign-in`). The password is read from
    /// the first line of standard input, never from the command line:
    /// `printf '%s\n' "$PASSWORD" | modelgate users set-password dev@example.com`.
    /// Setting it ends the user's password sessions.
    SetPassword {
        /// User id or name.
        id: String,
        /// Remove the password instead (the user can then sign in with a token only).
        #[arg(long)]
        remove: bool,
    },
    /// Delete a user; its tokens stop working at once.
    Delete {
        /// User id or name.
        id: String,
    },
}

/// `modelgate groups ...`
#[derive(Subcommand)]
pub enum GroupsCmd {
    /// List groups.
    List {
        /// SCIM filter, e.g. 'displayName eq "ml"'.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Show one group with its members.
    Get {
        /// Group id or name.
        id: String,
    },
    /// Create a group.
    Create {
        /// Group name.
        name: String,
        /// Initial members, by id or name (users, service principals or groups).
        #[arg(long = "member")]
        members: Vec<String>,
    },
    /// Add a member (user, service principal or group) to a group.
    AddMember {
        /// Group id or name.
        group_id: String,
        /// Member id or name.
        member_id: String,
    },
    /// Remove a member from a group.
    RemoveMember {
        /// Group id or name.
        group_id: String,
        /// Member id or name.
        member_id: String,
    },
    /// Delete a group.
    Delete {
        /// Group id or name.
        id: String,
    },
}

/// `modelgate service-principals ...`
#[derive(Subcommand)]
pub enum ServicePrincipalsCmd {
    /// List service principals.
    List {
        /// SCIM filter, e.g. 'displayName co "app"'.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Show one service principal.
    Get {
        /// Service principal id or name.
        id: String,
    },
    /// Create a service principal (an application's identity).
    Create {
        /// Display name.
        display_name: String,
        /// Application id (default: a new UUID).
        #[arg(long)]
        application_id: Option<String>,
    },
    /// Delete a service principal; its tokens stop working at once.
    Delete {
        /// Service principal id or name.
        id: String,
    },
}

const USERS: Listing<'static> = Listing {
    path: "/api/2.0/preview/scim/v2/Users",
    items: "Resources",
    id: "id",
    names: &["userName"],
    what: "user",
};
const GROUPS: Listing<'static> = Listing {
    path: "/api/2.0/preview/scim/v2/Groups",
    items: "Resources",
    id: "id",
    names: &["displayName"],
    what: "group",
};
const SERVICE_PRINCIPALS: Listing<'static> = Listing {
    path: "/api/2.0/preview/scim/v2/ServicePrincipals",
    items: "Resources",
    id: "id",
    names: &["applicationId", "displayName"],
    what: "service principal",
};

/// The id of a group member given by id or name: a user, else a service principal, else a group.
async fn member_id(client: &Client, given: &str) -> Result<String, CliError> {
    for listing in [&USERS, &SERVICE_PRINCIPALS, &GROUPS] {
        if let Some(id) = find(client, listing, given).await? {
            return Ok(id);
        }
    }
    Ok(given.to_string())
}

async fn list(
    client: &Client,
    kind: &str,
    filter: Option<String>,
    output: Output,
    headers: &[&str],
    row: impl Fn(&Value) -> Vec<String>,
) -> Result<(), CliError> {
    let query: Vec<(&str, &str)> = filter.as_deref().map(|f| vec![("filter", f)]).unwrap_or_default();
    let v = client.json_query(Method::GET, &format!("{SCIM}/{kind}"), &query, None).await?;
    print_list(&v, output, "Resources", headers, row);
    Ok(())
}

fn groups_of(v: &Value) -> String {
    at(v, "/groups").as_array().into_iter().flatten().map(|g| s(at(g, "/display"))).collect::<Vec<_>>().join(", ")
}

fn patch(op: &str, path: &str, value: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": op, "path": path, "value": value}]})
}

async fn delete(client: &Client, kind: &str, id: &str) -> Result<(), CliError> {
    client.json(Method::DELETE, &format!("{SCIM}/{kind}/{id}"), None).await?;
    Ok(())
}

/// The first line of standard input, which must not be a terminal (it would show the password).
fn read_password() -> Result<String, CliError> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(CliError::Usage(
            "give the password on standard input, e.g. printf '%s\\n' \"$PASSWORD\" | modelgate users set-password USER".into(),
        ));
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).map_err(|e| CliError::Usage(format!("cannot read the password: {e}")))?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(CliError::Usage("the password on standard input is empty".into()));
    }
    Ok(password)
}

/// Runs a `users` command.
pub async fn users(client: &Client, cmd: UsersCmd, output: Output) -> Result<(), CliError> {
    match cmd {
        UsersCmd::List { filter } => {
            list(client, "Users", filter, output, &["Id", "User name", "Display name", "Active", "Groups"], |u| {
                vec![
                    s(at(u, "/id")),
                    s(at(u, "/userName")),
                    s(at(u, "/displayName")),
                    s(at(u, "/active")),
                    groups_of(u),
                ]
            })
            .await?
        }
        UsersCmd::Get { id } => {
            let id = resolve(client, &USERS, &id).await?;
            print_json(&client.json(Method::GET, &format!("{SCIM}/Users/{id}"), None).await?)
        }
        UsersCmd::Create { user_name, display_name } => {
            let mut body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name});
            if let Some(d) = display_name {
                set(&mut body, "displayName", json!(d));
            }
            print_json(&client.json(Method::POST, &format!("{SCIM}/Users"), Some(&body)).await?);
        }
        UsersCmd::SetActive { id, active } => {
            let id = resolve(client, &USERS, &id).await?;
            let body = patch("replace", "active", json!(active));
            print_json(&client.json(Method::PATCH, &format!("{SCIM}/Users/{id}"), Some(&body)).await?)
        }
        UsersCmd::SetPassword { id, remove } => {
            let id = resolve(client, &USERS, &id).await?;
            let body = if remove {
                patch("remove", "password", Value::Null)
            } else {
                patch("replace", "password", json!(read_password()?))
            };
            client.json(Method::PATCH, &format!("{SCIM}/Users/{id}"), Some(&body)).await?;
            println!("{}", if remove { "Password removed." } else { "Password set." });
        }
        UsersCmd::Delete { id } => delete(client, "Users", &resolve(client, &USERS, &id).await?).await?,
    }
    Ok(())
}

/// Runs a `groups` command.
pub async fn groups(client: &Client, cmd: GroupsCmd, output: Output) -> Result<(), CliError> {
    match cmd {
        GroupsCmd::List { filter } => {
            list(client, "Groups", filter, output, &["Id", "Name", "Members", "Member of"], |g| {
                let members = at(g, "/members")
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| s(at(m, "/display")))
                    .collect::<Vec<_>>()
                    .join(", ");
                vec![s(at(g, "/id")), s(at(g, "/displayName")), members, groups_of(g)]
            })
            .await?
        }
        GroupsCmd::Get { id } => {
            let id = resolve(client, &GROUPS, &id).await?;
            print_json(&client.json(Method::GET, &format!("{SCIM}/Groups/{id}"), None).await?)
        }
        GroupsCmd::Create { name, members } => {
            let mut ids = Vec::new();
            for m in members {
                ids.push(member_id(client, &m).await?);
            }
            let members: Vec<Value> = ids.into_iter().map(|m| json!({"value": m})).collect();
            let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name, "members": members});
            print_json(&client.json(Method::POST, &format!("{SCIM}/Groups"), Some(&body)).await?);
        }
        GroupsCmd::AddMember { group_id, member_id: member } => {
            let group_id = resolve(client, &GROUPS, &group_id).await?;
            let body = patch("add", "members", json!([{"value": member_id(client, &member).await?}]));
            print_json(&client.json(Method::PATCH, &format!("{SCIM}/Groups/{group_id}"), Some(&body)).await?);
        }
        GroupsCmd::RemoveMember { group_id, member_id: member } => {
            let group_id = resolve(client, &GROUPS, &group_id).await?;
            let member = member_id(client, &member).await?;
            let body = json!({"Operations": [{"op": "remove", "path": format!("members[value eq \"{member}\"]")}]});
            print_json(&client.json(Method::PATCH, &format!("{SCIM}/Groups/{group_id}"), Some(&body)).await?);
        }
        GroupsCmd::Delete { id } => delete(client, "Groups", &resolve(client, &GROUPS, &id).await?).await?,
    }
    Ok(())
}

/// Runs a `service-principals` command.
pub async fn service_principals(client: &Client, cmd: ServicePrincipalsCmd, output: Output) -> Result<(), CliError> {
    match cmd {
        ServicePrincipalsCmd::List { filter } => {
            list(
                client,
                "ServicePrincipals",
                filter,
                output,
                &["Id", "Application id", "Display name", "Active", "Groups"],
                |p| {
                    vec![
                        s(at(p, "/id")),
                        s(at(p, "/applicationId")),
                        s(at(p, "/displayName")),
                        s(at(p, "/active")),
                        groups_of(p),
                    ]
                },
            )
            .await?
        }
        ServicePrincipalsCmd::Get { id } => {
            let id = resolve(client, &SERVICE_PRINCIPALS, &id).await?;
            print_json(&client.json(Method::GET, &format!("{SCIM}/ServicePrincipals/{id}"), None).await?)
        }
        ServicePrincipalsCmd::Create { display_name, application_id } => {
            let mut body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"], "displayName": display_name});
            if let Some(a) = application_id {
                set(&mut body, "applicationId", json!(a));
            }
            print_json(&client.json(Method::POST, &format!("{SCIM}/ServicePrincipals"), Some(&body)).await?);
        }
        ServicePrincipalsCmd::Delete { id } => {
            delete(client, "ServicePrincipals", &resolve(client, &SERVICE_PRINCIPALS, &id).await?).await?
        }
    }
    Ok(())
}
