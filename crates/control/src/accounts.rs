//! Accounts, keys, namespaces and GetAccount.

use model::validate;
use store::{Account, ApiKey, Namespace, StoreError};

use crate::{Caller, Control, ControlError, Result, random_token};

/// A freshly made account with its first key (the secret is shown once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub app_id: i64,
    pub uin: String,
    pub secret_id: String,
    pub secret_key: String,
}

/// What GetAccount reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountUsage {
    /// (namespace, the names of its functions)
    pub namespaces: Vec<(String, Vec<String>)>,
    /// The concurrency quota, what reservations take of it and the memory running now.
    pub concurrency: crate::ConcurrencyUsage,
}

fn new_key(app_id: i64, uin: &str) -> ApiKey {
    ApiKey {
        secret_id: format!("AKID{}", random_token(32, true)),
        secret_key: random_token(32, true),
        app_id,
        uin: uin.to_string(),
    }
}

impl Control {
    /// Creates an account with a random AppId/Uin, its `default` namespace and a key.
    pub async fn create_account(&self) -> Result<NewAccount> {
        for _ in 0..8 {
            let seed = uuid::Uuid::new_v4().as_u128();
            let app_id = 1_250_000_000 + (seed % 700_000_000) as i64;
            let uin = format!(
                "{}",
                100_000_000_000u64 + ((seed >> 64) % 900_000_000_000) as u64
            );
            let account = Account {
                app_id,
                uin: uin.clone(),
                created_ms: store::now_ms(),
            };
            let key = new_key(app_id, &uin);
            match self.store.create_account(&account, &key).await {
                Ok(()) => {
                    return Ok(NewAccount {
                        app_id,
                        uin,
                        secret_id: key.secret_id,
                        secret_key: key.secret_key,
                    });
                }
                Err(StoreError::AlreadyExists(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Internal("could not pick a free AppId".into()))
    }

    /// Adds a key to an account.
    pub async fn create_key(&self, app_id: i64) -> Result<NewAccount> {
        let account = self
            .store
            .account(app_id)
            .await?
            .ok_or_else(|| ControlError::Internal(format!("no account with AppId {app_id}")))?;
        let key = new_key(app_id, &account.uin);
        self.store.create_key(&key).await?;
        Ok(NewAccount {
            app_id,
            uin: account.uin,
            secret_id: key.secret_id,
            secret_key: key.secret_key,
        })
    }

    /// The number of accounts (a fresh installation has none).
    pub async fn account_count(&self) -> Result<i64> {
        Ok(self.store.count_accounts().await?)
    }

    pub async fn accounts(&self) -> Result<Vec<Account>> {
        Ok(self.store.accounts().await?)
    }

    pub async fn get_account(&self, caller: &Caller) -> Result<AccountUsage> {
        let mut namespaces = Vec::new();
        for ns in self.store.namespaces(caller.app_id).await? {
            let names = self.store.function_names(caller.app_id, &ns.name).await?;
            namespaces.push((ns.name, names));
        }
        let concurrency = self.concurrency_usage(caller).await?;
        Ok(AccountUsage {
            namespaces,
            concurrency,
        })
    }

    /// Fails with `NamespaceNotFound` unless the caller has this namespace.
    pub(crate) async fn require_namespace(&self, caller: &Caller, ns: &str) -> Result<()> {
        match self.store.namespace(caller.app_id, ns).await? {
            Some(_) => Ok(()),
            None => Err(ControlError::NamespaceNotFound(ns.to_string())),
        }
    }

    pub async fn list_namespaces(&self, caller: &Caller) -> Result<Vec<Namespace>> {
        Ok(self.store.namespaces(caller.app_id).await?)
    }

    pub async fn create_namespace(
        &self,
        caller: &Caller,
        name: &str,
        description: &str,
    ) -> Result<()> {
        validate::namespace_name(name)?;
        validate::description(description, &self.cfg.limits)?;
        if name == "default" {
            return Err(ControlError::NamespaceExists(name.to_string()));
        }
        let now = store::now_ms();
        let ns = Namespace {
            name: name.to_string(),
            description: description.to_string(),
            add_ms: now,
            mod_ms: now,
        };
        match self
            .store
            .create_namespace(caller.app_id, &ns, self.cfg.limits.namespaces)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(ControlError::LimitExceeded {
                what: "Namespace",
                message: format!(
                    "an account has at most {} namespaces",
                    self.cfg.limits.namespaces
                ),
            }),
            Err(StoreError::AlreadyExists(_)) => Err(ControlError::NamespaceExists(name.into())),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn update_namespace(
        &self,
        caller: &Caller,
        name: &str,
        description: &str,
    ) -> Result<()> {
        validate::description(description, &self.cfg.limits)?;
        if self
            .store
            .update_namespace(caller.app_id, name, description, store::now_ms())
            .await?
        {
            Ok(())
        } else {
            Err(ControlError::NamespaceNotFound(name.to_string()))
        }
    }

    pub async fn delete_namespace(&self, caller: &Caller, name: &str) -> Result<()> {
        if name == "default" {
            return Err(ControlError::DeleteNamespace(
                "the default namespace cannot be deleted".into(),
            ));
        }
        match self.store.delete_namespace(caller.app_id, name).await? {
            None => Err(ControlError::NamespaceNotFound(name.to_string())),
            Some(0) => Ok(()),
            Some(n) => Err(ControlError::DeleteNamespace(format!(
                "namespace {name} still holds {n} functions: delete them first"
            ))),
        }
    }
}
