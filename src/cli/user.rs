//! `idgate user`: the people the gateway has registered, through the admin
//! API. Deleting a user ends their sessions at once and frees the username.

use std::process::ExitCode;

use clap::Subcommand;

use super::admin_client::{self, pretty, AdminConn, Api, Failure};

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Print every registered user as a JSON array.
    List,
    /// Print one user as JSON.
    Get {
        /// The username, as `user list` shows it.
        username: String,
    },
    /// Remove a user: their sessions end at once and the username is free again.
    Delete {
        /// The username, as `user list` shows it.
        username: String,
    },
}

pub fn run(conn: AdminConn, command: UserCommand) -> ExitCode {
    admin_client::run(execute(conn, command))
}

async fn execute(conn: AdminConn, command: UserCommand) -> Result<Option<String>, Failure> {
    let api = Api::new(&conn, "/api/v1/users")?;
    match command {
        UserCommand::List => {
            let all: Vec<serde_json::Value> = api.get("").await?;
            Ok(Some(pretty(&all)))
        }
        UserCommand::Get { username } => {
            check(&username)?;
            let user: serde_json::Value = api.get(&format!("/{username}")).await?;
            Ok(Some(pretty(&user)))
        }
        UserCommand::Delete { username } => {
            check(&username)?;
            api.delete(&format!("/{username}")).await?;
            Ok(None)
        }
    }
}

fn check(username: &str) -> Result<(), Failure> {
    if crate::identity::username::is_valid(username) {
        Ok(())
    } else {
        Err(Failure::Invalid(format!(
            "invalid username {username:?}: usernames are 2 to 36 lower-case letters, digits and single dashes"
        )))
    }
}
