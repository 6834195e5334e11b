//! Key policies: which principals may call which actions on a key.
//!
//! The document is AWS's JSON (`Version`, `Id`, `Statement` with `Sid`, `Effect`,
//! `Principal.AWS` or `NotPrincipal`, `Action` or `NotAction`, `Resource` or `NotResource`,
//! `Condition`), kept as the caller wrote it. atrest evaluates: principals by ARN, account
//! root or `*`; actions exact or with a trailing `*`; resources `*` or the key's own ARN;
//! conditions (`condition`); an explicit Deny wins.
//! Granting an account's root delegates to that account's IAM, which atrest does not
//! emulate: every principal of that account is then allowed, as with AWS's default policy.
//! `NotPrincipal`, `NotAction` and `NotResource` apply to everything but what they list.
//! What it cannot evaluate (condition keys and operators outside `condition`'s list,
//! members it does not know) is refused, never ignored.

mod condition;

use serde_json::{json, Value};

use super::{Caller, KmsError};
use condition::Conditions;
pub use condition::RequestFacts;

#[derive(Clone, Debug, PartialEq, Eq)]
/// A key policy: who may call which actions on a key.
pub struct KeyPolicy {
    statements: Vec<Statement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Statement {
    sid: Option<String>,
    allow: bool,
    principals: Vec<String>,
    actions: Vec<String>,
    /// `*`, or key ARNs: a statement naming other keys does not apply to this one.
    resources: Vec<String>,
    /// Which of `Principal`/`NotPrincipal`, `Action`/`NotAction`, `Resource`/`NotResource`
    /// the statement used: the `Not` forms apply to everything but what they list.
    negated: Negated,
    conditions: Conditions,
    /// The `Condition` block as written, to write it back.
    condition_block: Option<Value>,
}

/// The statement members atrest evaluates.
const STATEMENT_MEMBERS: &[&str] = &[
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Negated {
    principals: bool,
    actions: bool,
    resources: bool,
}

/// The one of `name` and `Not<name>` a statement has; both or neither is malformed.
fn one_of<'v>(
    obj: &'v serde_json::Map<String, Value>,
    name: &str,
) -> Result<(&'v Value, bool), KmsError> {
    let not = format!("Not{name}");
    match (obj.get(name), obj.get(&not)) {
        (Some(v), None) => Ok((v, false)),
        (None, Some(v)) => Ok((v, true)),
        (Some(_), Some(_)) => Err(KmsError::MalformedPolicyDocument(format!(
            "a Statement has {name} or {not}, not both"
        ))),
        (None, None) => Err(KmsError::MalformedPolicyDocument(format!(
            "each Statement needs {name} (or {not})"
        ))),
    }
}

impl KeyPolicy {
    /// AWS's default key policy: the key's own account has full access.
    pub fn default_for(account: &str) -> Self {
        KeyPolicy {
            statements: vec![Statement {
                sid: Some("Enable IAM User Permissions".into()),
                allow: true,
                principals: vec![format!("arn:aws:iam::{account}:root")],
                actions: vec!["kms:*".into()],
                resources: vec!["*".into()],
                negated: Negated::default(),
                conditions: Conditions::default(),
                condition_block: None,
            }],
        }
    }

    /// The document CreateKey gives a key when the caller gives none, laid out as AWS's
    /// GetKeyPolicy returns it.
    pub fn default_document(account: &str) -> String {
        format!(
            r#"{{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {{
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {{
      "AWS" : "arn:aws:iam::{account}:root"
    }},
    "Action" : "kms:*",
    "Resource" : "*"
  }} ]
}}"#
        )
    }

    /// Parses AWS's policy JSON; refuses what atrest cannot evaluate faithfully.
    pub fn parse(document: &str) -> Result<Self, KmsError> {
        let bad = |why: String| KmsError::MalformedPolicyDocument(why);
        let doc: Value =
            serde_json::from_str(document).map_err(|e| bad(format!("not JSON: {e}")))?;
        let members = doc
            .as_object()
            .ok_or_else(|| bad("the policy must be a JSON object".into()))?;
        if let Some(unknown) = members
            .keys()
            .find(|k| !["Version", "Id", "Statement"].contains(&k.as_str()))
        {
            return Err(bad(format!(
                "{unknown:?} is not a member of a key policy (Version, Id, Statement)"
            )));
        }
        match members.get("Version") {
            None => {}
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
            Some(v) => {
                return Err(bad(format!(
                    "Version {v} is not a policy language version (2012-10-17 or 2008-10-17)"
                )))
            }
        }
        let statements = match doc.get("Statement") {
            Some(Value::Array(list)) => list.clone(),
            Some(single @ Value::Object(_)) => vec![single.clone()],
            _ => return Err(bad("the policy has no Statement list".into())),
        };
        if statements.is_empty() {
            return Err(bad("the policy has an empty Statement list".into()));
        }
        let statements = statements
            .iter()
            .map(Statement::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeyPolicy { statements })
    }

    /// The policy as AWS's JSON.
    pub fn to_json(&self) -> String {
        let statements: Vec<Value> = self.statements.iter().map(Statement::to_json).collect();
        let doc = json!({ "Version": "2012-10-17", "Id": "key-policy", "Statement": statements });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }

    /// Whether `caller` may call `action` (e.g. `kms:Decrypt`) on the key `key_arn` that
    /// has this policy (`None`: a key not made yet, which every resource names).
    pub fn allows(&self, caller: &Caller, action: &str, key_arn: Option<&str>) -> bool {
        self.decide(caller, action, key_arn, &RequestFacts::default()) == Some(true)
    }

    /// Whether a condition reads `kms:RequestAlias` or `kms:ResourceAliases`.
    pub fn reads_aliases(&self) -> bool {
        self.statements.iter().any(|s| s.conditions.read_aliases())
    }

    /// The policy's verdict: `Some(false)` when a statement denies, `Some(true)` when one
    /// allows and none denies, `None` when none applies (a grant may then allow).
    pub fn decide(
        &self,
        caller: &Caller,
        action: &str,
        key_arn: Option<&str>,
        facts: &RequestFacts<'_>,
    ) -> Option<bool> {
        let matching = |allow: bool| {
            self.statements
                .iter()
                .filter(|s| s.allow == allow)
                .any(|s| {
                    s.matches_principal(caller)
                        && s.matches_action(action)
                        && s.matches_resource(key_arn)
                        && s.conditions.hold(caller, facts)
                })
        };
        if matching(false) {
            Some(false)
        } else if matching(true) {
            Some(true)
        } else {
            None
        }
    }
}

impl Statement {
    fn parse(v: &Value) -> Result<Self, KmsError> {
        let bad = |why: &str| KmsError::MalformedPolicyDocument(why.to_string());
        let obj = v
            .as_object()
            .ok_or_else(|| bad("each Statement must be an object"))?;
        if let Some(unknown) = obj
            .keys()
            .find(|k| !STATEMENT_MEMBERS.contains(&k.as_str()))
        {
            return Err(bad(&format!(
                "{unknown:?} is not a member of a policy statement ({})",
                STATEMENT_MEMBERS.join(", ")
            )));
        }
        let allow = match obj.get("Effect").and_then(Value::as_str) {
            Some("Allow") => true,
            Some("Deny") => false,
            _ => {
                return Err(bad(
                    "each Statement needs \"Effect\": \"Allow\" or \"Deny\"",
                ))
            }
        };
        let (principal, not_principal) = one_of(obj, "Principal")?;
        let principals = match principal {
            Value::String(s) if s == "*" => vec!["*".to_string()],
            Value::Object(p) => match p.get("AWS") {
                Some(v) => string_or_list(v)
                    .ok_or_else(|| bad("Principal.AWS must be a string or a list"))?,
                None => return Err(bad("only AWS principals are emulated (Principal.AWS)")),
            },
            _ => return Err(bad("Principal must be \"*\" or {\"AWS\": ...}")),
        };
        let principals = principals
            .into_iter()
            .map(|p| {
                normalize_principal(&p).ok_or_else(|| {
                    bad(&format!(
                        "principal {p:?} is not an account id, IAM ARN or *"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (action, not_action) = one_of(obj, "Action")?;
        let actions =
            string_or_list(action).ok_or_else(|| bad("Action must be a string or a list"))?;
        if let Some(a) = actions
            .iter()
            .find(|a| !(a == &"*" || a.to_ascii_lowercase().starts_with("kms:")))
        {
            return Err(bad(&format!("action {a:?} is not a kms: action")));
        }
        let (resource, not_resource) = one_of(obj, "Resource")?;
        let resources =
            string_or_list(resource).ok_or_else(|| bad("Resource must be a string or a list"))?;
        if let Some(r) = resources
            .iter()
            .find(|r| *r != "*" && !r.starts_with("arn:aws:kms:"))
        {
            return Err(bad(&format!("resource {r:?} is not * or a KMS key ARN")));
        }
        let sid = obj.get("Sid").and_then(Value::as_str).map(str::to_string);
        let condition_block = obj.get("Condition").cloned();
        let conditions = match &condition_block {
            Some(block) => Conditions::parse(block)?,
            None => Conditions::default(),
        };
        Ok(Statement {
            sid,
            allow,
            principals,
            actions,
            resources,
            negated: Negated {
                principals: not_principal,
                actions: not_action,
                resources: not_resource,
            },
            conditions,
            condition_block,
        })
    }

    fn to_json(&self) -> Value {
        let name = |negated: bool, name: &str| {
            if negated {
                format!("Not{name}")
            } else {
                name.to_string()
            }
        };
        let mut v = json!({ "Effect": if self.allow { "Allow" } else { "Deny" } });
        if let Some(object) = v.as_object_mut() {
            object.insert(
                name(self.negated.principals, "Principal"),
                json!({ "AWS": self.principals }),
            );
            object.insert(name(self.negated.actions, "Action"), json!(self.actions));
            object.insert(
                name(self.negated.resources, "Resource"),
                json!(self.resources),
            );
        }
        if let Some(object) = v.as_object_mut() {
            if let Some(sid) = &self.sid {
                object.insert("Sid".into(), json!(sid));
            }
            if let Some(block) = &self.condition_block {
                object.insert("Condition".into(), block.clone());
            }
        }
        v
    }

    /// Whether the statement names `caller` (for `NotPrincipal`: does not name it). An
    /// account's root stands for every principal of the account, either way.
    fn matches_principal(&self, caller: &Caller) -> bool {
        let root = format!("arn:aws:iam::{}:root", caller.account());
        let listed = self
            .principals
            .iter()
            .any(|p| p == "*" || *p == root || p == caller.principal());
        listed != self.negated.principals
    }

    /// Whether the statement covers the key `key_arn` (`None`: a key not made yet, which
    /// every statement covers).
    fn matches_resource(&self, key_arn: Option<&str>) -> bool {
        let Some(arn) = key_arn else {
            return true;
        };
        let listed = self.resources.iter().any(|r| r == "*" || r == arn);
        listed != self.negated.resources
    }

    fn matches_action(&self, action: &str) -> bool {
        let listed = self
            .actions
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => action
                    .to_ascii_lowercase()
                    .starts_with(&prefix.to_ascii_lowercase()),
                None => pattern.eq_ignore_ascii_case(action),
            });
        listed != self.negated.actions
    }
}

fn string_or_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}

/// A bare account id means that account's root, as in AWS.
fn normalize_principal(p: &str) -> Option<String> {
    if p == "*" {
        return Some(p.to_string());
    }
    if super::keyref::validate_account(p).is_ok() {
        return Some(format!("arn:aws:iam::{p}:root"));
    }
    super::parse_principal_arn(p).ok().map(|_| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "arn:aws:kms:us-east-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn caller(arn: &str) -> Caller {
        Caller::new(arn, "us-east-1").unwrap()
    }

    #[test]
    fn default_policy_trusts_the_whole_account() {
        let p = KeyPolicy::default_for("111122223333");
        assert!(p.allows(
            &caller("arn:aws:iam::111122223333:role/any"),
            "kms:Decrypt",
            None
        ));
        assert!(!p.allows(
            &caller("arn:aws:iam::444455556666:root"),
            "kms:Decrypt",
            None
        ));
    }

    #[test]
    fn grants_are_per_principal_and_action_and_deny_wins() {
        let p = KeyPolicy::parse(
            r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:role/atlas"},
                 "Action":["kms:Encrypt","kms:Describe*"],"Resource":"*"},
                {"Effect":"Deny","Principal":{"AWS":"*"},"Action":"kms:DescribeKey","Resource":"*"}]}"#,
        )
        .unwrap();
        let atlas = caller("arn:aws:iam::444455556666:role/atlas");
        assert!(p.allows(&atlas, "kms:Encrypt", Some(KEY)));
        assert!(!p.allows(&atlas, "kms:Decrypt", Some(KEY)));
        assert!(!p.allows(&atlas, "kms:DescribeKey", Some(KEY)));
        assert!(!p.allows(
            &caller("arn:aws:iam::444455556666:role/other"),
            "kms:Encrypt",
            Some(KEY)
        ));
        assert_eq!(KeyPolicy::parse(&p.to_json()).unwrap(), p);
    }

    #[test]
    fn the_default_document_is_the_default_policy() {
        let doc = KeyPolicy::default_document("111122223333");
        assert_eq!(
            KeyPolicy::parse(&doc).unwrap(),
            KeyPolicy::default_for("111122223333")
        );
        let v: Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(v["Id"], "key-default-1");
        assert_eq!(v["Statement"][0]["Action"], "kms:*");
        assert_eq!(
            v["Statement"][0]["Principal"]["AWS"],
            "arn:aws:iam::111122223333:root"
        );
    }

    #[test]
    fn a_statement_naming_another_key_does_not_apply() {
        let other = KEY.replace("1234abcd", "9999abcd");
        let p = KeyPolicy::parse(&format!(
            r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"*"}},"Action":"kms:*","Resource":"{other}"}}]}}"#
        ))
        .unwrap();
        let anyone = caller("arn:aws:iam::444455556666:root");
        assert!(p.allows(&anyone, "kms:Decrypt", Some(&other)));
        assert!(!p.allows(&anyone, "kms:Decrypt", Some(KEY)));
    }

    #[test]
    fn not_forms_apply_to_everything_but_what_they_list() {
        let owner = "arn:aws:iam::444455556666:role/owner";
        let p = KeyPolicy::parse(&format!(
            r#"{{"Statement":[
                {{"Effect":"Allow","Principal":{{"AWS":"*"}},"NotAction":["kms:Decrypt","kms:Put*"],"Resource":"*"}},
                {{"Effect":"Deny","NotPrincipal":{{"AWS":"{owner}"}},"Action":"kms:Encrypt","Resource":"*"}},
                {{"Effect":"Deny","Principal":{{"AWS":"*"}},"Action":"kms:DescribeKey","NotResource":"{KEY}"}}]}}"#
        ))
        .unwrap();
        let (me, other) = (caller(owner), caller("arn:aws:iam::444455556666:role/app"));
        assert!(p.allows(&me, "kms:Encrypt", Some(KEY)));
        assert!(!p.allows(&me, "kms:Decrypt", Some(KEY)));
        assert!(!p.allows(&me, "kms:PutKeyPolicy", Some(KEY)));
        assert!(
            !p.allows(&other, "kms:Encrypt", Some(KEY)),
            "denied to all but the owner"
        );
        assert!(p.allows(&other, "kms:GenerateDataKey", Some(KEY)));
        let elsewhere = KEY.replace("1234abcd", "9999abcd");
        assert!(p.allows(&me, "kms:DescribeKey", Some(KEY)));
        assert!(!p.allows(&me, "kms:DescribeKey", Some(&elsewhere)));
        assert_eq!(KeyPolicy::parse(&p.to_json()).unwrap(), p);
    }

    #[test]
    fn refuses_what_it_cannot_evaluate() {
        for doc in [
            "nope",
            r#"{"Statement":[]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}]}"#,
            r#"{"Statement":[{"Effect":"Maybe","Principal":{"AWS":"*"},"Action":"kms:*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"bob"},"Action":"kms:*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*","NotAction":"kms:Decrypt","Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Resource":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*","Resource":"*","Extra":1}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*","Resource":"bucket"}]}"#,
            r#"{"Version":"2020-01-01","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*","Resource":"*"}]}"#,
            r#"{"Statemnt":[],"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:*","Resource":"*"}]}"#,
        ] {
            assert!(
                matches!(
                    KeyPolicy::parse(doc),
                    Err(KmsError::MalformedPolicyDocument(_))
                ),
                "{doc}"
            );
        }
    }
}
