//! Aliases: named pointers to versions, with weighted or rule-based routing (used by Invoke).

use model::{Alias, FunctionKey, InvalidValue, Qualifier, RoutingConfig, validate};
use store::StoreError;

use crate::functions::RETRIES;
use crate::{Caller, Control, ControlError, Result};

/// A CreateAlias / UpdateAlias request, decoded.
#[derive(Debug, Clone)]
pub struct AliasSpec {
    pub name: String,
    pub function_version: String,
    pub routing: RoutingConfig,
    /// `None`: empty on create, unchanged on update.
    pub description: Option<String>,
}

impl Control {
    /// A version an alias may point to must exist (or be `$LATEST`) and not be going away.
    async fn check_alias_target(&self, key: &FunctionKey, version: &str) -> Result<()> {
        if version == Qualifier::LATEST {
            return Ok(());
        }
        if !matches!(Qualifier::parse(version), Some(Qualifier::Version(_))) {
            return Err(InvalidValue::new(
                "FunctionVersion",
                format!("`{version}` is not a version number or $LATEST."),
            )
            .into());
        }
        match self.store.function(key, version).await? {
            Some(r) if r.status != model::FunctionStatus::Deleting => Ok(()),
            _ => Err(ControlError::VersionNotFound {
                name: key.name.clone(),
                version: version.to_string(),
            }),
        }
    }

    async fn check_routing(&self, key: &FunctionKey, main: &str, r: &RoutingConfig) -> Result<()> {
        let mut total = 0.0;
        for w in &r.weights {
            if !(0.0..=1.0).contains(&w.weight) || !w.weight.is_finite() {
                return Err(InvalidValue::new(
                    "RoutingConfig",
                    format!(
                        "weight {} of version {} is not between 0 and 1.",
                        w.weight, w.version
                    ),
                )
                .into());
            }
            if w.version == main {
                return Err(InvalidValue::new(
                    "RoutingConfig",
                    format!("version {} is already the alias's main version.", w.version),
                )
                .into());
            }
            total += w.weight;
            self.check_alias_target(key, &w.version).await?;
        }
        if total > 1.0 + 1e-9 {
            return Err(InvalidValue::new(
                "RoutingConfig",
                format!("the additional weights add up to {total}, more than 1."),
            )
            .into());
        }
        for m in &r.matches {
            if m.method != "exact" && m.method != "range" {
                return Err(InvalidValue::new(
                    "RoutingConfig",
                    format!("match method `{}` is not `exact` or `range`.", m.method),
                )
                .into());
            }
            if m.key.is_empty() {
                return Err(InvalidValue::new("RoutingConfig", "a match rule needs a Key.").into());
            }
            if m.method == "range" && parse_range(&m.expression).is_none() {
                return Err(InvalidValue::new(
                    "RoutingConfig",
                    format!(
                        "range expression `{}` is not of the form `[a,b)`.",
                        m.expression
                    ),
                )
                .into());
            }
            self.check_alias_target(key, &m.version).await?;
        }
        Ok(())
    }

    pub async fn create_alias(
        &self,
        caller: &Caller,
        namespace: &str,
        function: &str,
        spec: AliasSpec,
    ) -> Result<()> {
        let now = store::now_ms();
        let alias = Alias {
            name: spec.name,
            function_version: spec.function_version,
            routing: spec.routing,
            description: spec.description.unwrap_or_default(),
            add_ms: now,
            mod_ms: now,
        };
        validate::alias_name(&alias.name)?;
        validate::description(&alias.description, &self.cfg.limits)?;
        let key = self.key(caller, namespace, function);
        // The store checks the targets (and the quota) again under the function's lock in the transaction that
        // inserts: a version deleted since these reads makes it a conflict, and the next round reports it.
        for _ in 0..RETRIES {
            self.latest(&key).await?;
            self.check_alias_target(&key, &alias.function_version)
                .await?;
            self.check_routing(&key, &alias.function_version, &alias.routing)
                .await?;
            match self
                .store
                .create_alias(&key, &alias, self.cfg.limits.aliases_per_function)
                .await
            {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    return Err(ControlError::LimitExceeded {
                        what: "Alias",
                        message: format!(
                            "function {function} already has {} aliases, the most it may have",
                            self.cfg.limits.aliases_per_function
                        ),
                    });
                }
                Err(StoreError::AlreadyExists(_)) => {
                    return Err(ControlError::AliasExists(alias.name));
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Internal(
            "the function kept changing; try again".into(),
        ))
    }

    pub async fn get_alias(
        &self,
        caller: &Caller,
        namespace: &str,
        function: &str,
        name: &str,
    ) -> Result<Alias> {
        let key = self.key(caller, namespace, function);
        self.latest(&key).await?;
        self.store
            .alias(&key, name)
            .await?
            .ok_or_else(|| ControlError::AliasNotFound {
                name: function.to_string(),
                alias: name.to_string(),
            })
    }

    /// The aliases of a function, optionally only those that route to `version` (as main or additional version).
    pub async fn list_aliases(
        &self,
        caller: &Caller,
        namespace: &str,
        function: &str,
        version: Option<&str>,
    ) -> Result<Vec<Alias>> {
        let key = self.key(caller, namespace, function);
        self.latest(&key).await?;
        let all = self.store.aliases(&key).await?;
        Ok(all
            .into_iter()
            .filter(|a| version.is_none_or(|v| a.versions().any(|x| x == v)))
            .collect())
    }

    /// UpdateAlias: a new target and routing (no routing clears it); the description is kept unless given.
    pub async fn update_alias(
        &self,
        caller: &Caller,
        namespace: &str,
        function: &str,
        spec: AliasSpec,
    ) -> Result<()> {
        let current = self
            .get_alias(caller, namespace, function, &spec.name)
            .await?;
        let alias = Alias {
            name: spec.name,
            function_version: spec.function_version,
            routing: spec.routing,
            description: spec.description.unwrap_or(current.description),
            add_ms: current.add_ms,
            mod_ms: store::now_ms(),
        };
        validate::description(&alias.description, &self.cfg.limits)?;
        let key = self.key(caller, namespace, function);
        // As in create_alias, the store re-checks the targets under the function's lock.
        for _ in 0..RETRIES {
            self.latest(&key).await?;
            self.check_alias_target(&key, &alias.function_version)
                .await?;
            self.check_routing(&key, &alias.function_version, &alias.routing)
                .await?;
            match self.store.update_alias(&key, &alias).await {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    return Err(ControlError::AliasNotFound {
                        name: function.to_string(),
                        alias: alias.name,
                    });
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Internal(
            "the function kept changing; try again".into(),
        ))
    }

    pub async fn delete_alias(
        &self,
        caller: &Caller,
        namespace: &str,
        function: &str,
        name: &str,
    ) -> Result<()> {
        if name == Alias::DEFAULT {
            return Err(InvalidValue::new("Alias", "the $DEFAULT alias cannot be deleted.").into());
        }
        let key = self.key(caller, namespace, function);
        self.latest(&key).await?;
        if self.store.delete_alias(&key, name).await? {
            Ok(())
        } else {
            Err(ControlError::AliasNotFound {
                name: function.to_string(),
                alias: name.to_string(),
            })
        }
    }
}

/// Parses a range rule `[a,b)` (integers, either bracket kind at either end) into (a, a_inclusive, b,
/// b_inclusive).
pub fn parse_range(expr: &str) -> Option<(i64, bool, i64, bool)> {
    let e = expr.trim();
    let lo_inc = match e.chars().next()? {
        '[' => true,
        '(' => false,
        _ => return None,
    };
    let hi_inc = match e.chars().last()? {
        ']' => true,
        ')' => false,
        _ => return None,
    };
    let inner = e.get(1..e.len() - 1)?;
    let (a, b) = inner.split_once(',')?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, lo_inc, b, hi_inc))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("[1,100)"), Some((1, true, 100, false)));
        assert_eq!(parse_range("(0, 5]"), Some((0, false, 5, true)));
        assert_eq!(parse_range("[5,1)"), None);
        assert_eq!(parse_range("1,2"), None);
        assert_eq!(parse_range("[a,2)"), None);
    }
}
