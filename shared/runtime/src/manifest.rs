//! Reads a Spin application manifest (`spin_manifest_version = 2`): HTTP triggers, components
//! and what each may touch, and application variables resolved the way Spin resolves them
//! (environment `SPIN_VARIABLE_<NAME>` first, then the manifest default).

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: u32,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
struct RawApplication {
    name: String,
    #[serde(default)]
    trigger: RawApplicationTriggers,
}

#[derive(Deserialize, Default)]
struct RawApplicationTriggers {
    redis: Option<RawRedisApplication>,
}

/// `[application.trigger.redis]`, as Spin's trigger-redis reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedisApplication {
    address: String,
}

#[derive(Deserialize, Default)]
struct RawVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    #[allow(dead_code)]
    secret: bool,
}

#[derive(Deserialize, Default)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
    #[serde(default)]
    redis: Vec<RawRedisTrigger>,
}

/// `[[trigger.redis]]`: Spin rejects unknown fields here, so do we.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedisTrigger {
    channel: String,
    component: String,
    address: Option<String>,
}

#[derive(Deserialize)]
struct RawHttpTrigger {
    route: String,
    component: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
struct RawComponent {
    source: String,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

/// One component and the capabilities the manifest grants it: nothing else is reachable.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    pub id: String,
    pub source: PathBuf,
    pub key_value_stores: Vec<String>,
    pub sqlite_databases: Vec<String>,
    pub allowed_outbound_hosts: Vec<String>,
    /// Component variables with their templates already expanded.
    pub variables: HashMap<String, String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpRoute {
    pub route: String,
    pub component: String,
}

/// A component run for each message published on `channel` at `address`.
#[derive(Clone, Debug, PartialEq)]
pub struct RedisTrigger {
    pub address: String,
    pub channel: String,
    pub component: String,
}

#[derive(Clone, Debug)]
pub struct App {
    pub name: String,
    pub routes: Vec<HttpRoute>,
    pub redis: Vec<RedisTrigger>,
    pub components: BTreeMap<String, Component>,
    /// Application variables as resolved (environment, then default; `None`: unset).
    pub variables: HashMap<String, Option<String>>,
}

/// Variable names as Spin allows them: lower-case letters, digits and underscores.
pub fn valid_variable_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Expands `{{ name }}` references to application variables.
fn expand(template: &str, app_vars: &HashMap<String, Option<String>>, component: &str) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").with_context(|| format!("component {component}: unclosed {{{{ in {template:?}"))?;
        let name = rest[start + 2..start + end].trim();
        match app_vars.get(name) {
            Some(Some(value)) => out.push_str(value),
            Some(None) => bail!("component {component}: variable {name} is required but not set (export SPIN_VARIABLE_{})", name.to_ascii_uppercase()),
            None => bail!("component {component}: {{{{ {name} }}}} names no application variable"),
        }
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn read(path: &Path) -> Result<RawManifest> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).context("parsing the manifest")
}

/// Defaults this host puts before the manifest's, where what suits it differs from what suits
/// the Spin CLI: its key-value writes are group-committed (`stores.rs`), so the download's
/// access records are cheapest in its own `audit` store, not a Redis round trip away. An
/// environment value still wins.
const HOST_DEFAULTS: &[(&str, &str)] = &[("audit_spool", "key-value")];

/// A variable's value: the environment's, else this host's default, else the manifest's.
fn resolve(name: &str, var: &RawVariable, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    env(&format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()))
        .or_else(|| HOST_DEFAULTS.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned()))
        .or_else(|| var.default.clone())
}

/// The application's variables as resolved (environment, then default) and every key-value
/// store a component is granted: what `vaultx_core::config::check` needs, read without
/// expanding anything, so a missing required variable is one problem among the others.
fn settings_of(raw: &RawManifest, env: &dyn Fn(&str) -> Option<String>) -> (HashMap<String, Option<String>>, Vec<String>) {
    let variables = raw
        .variables
        .iter()
        .map(|(name, var)| (name.clone(), resolve(name, var, env)))
        .collect();
    let mut stores: Vec<String> = raw.component.values().flat_map(|c| c.key_value_stores.iter().cloned()).collect();
    stores.sort();
    stores.dedup();
    (variables, stores)
}

/// Checks every setting at once (`vaultx_core::config::check`); `Err` lists each problem.
pub fn check_settings(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<usize> {
    check(&read(path)?, env)
}

fn check(raw: &RawManifest, env: &dyn Fn(&str) -> Option<String>) -> Result<usize> {
    let (variables, stores) = settings_of(raw, env);
    let problems = vaultx_core::config::check(&|name| variables.get(name).cloned().flatten(), &|name| variables.contains_key(name), &stores);
    if problems.is_empty() {
        return Ok(variables.len());
    }
    // Each problem starts with its variable's name; say how to set it.
    let lines: Vec<String> = problems
        .iter()
        .map(|p| {
            let name: String = p.chars().take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_').collect();
            format!("{p} [SPIN_VARIABLE_{}]", name.to_ascii_uppercase())
        })
        .collect();
    bail!("the configuration has {} problem(s) (.env.example lists every setting):\n  - {}", problems.len(), lines.join("\n  - "))
}

#[cfg(test)]
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<App> {
    from_raw(read(path)?, path.parent().unwrap_or(Path::new(".")), env)
}

/// [`check_settings`] then [`load`], reading and parsing the manifest once (it is a good part
/// of the time to the first answer).
pub fn load_checked(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<App> {
    let raw = read(path)?;
    check(&raw, env)?;
    from_raw(raw, path.parent().unwrap_or(Path::new(".")), env)
}

#[cfg(test)]
pub fn parse(text: &str, base: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<App> {
    from_raw(toml::from_str(text).context("parsing the manifest")?, base, env)
}

fn from_raw(raw: RawManifest, base: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<App> {
    if raw.spin_manifest_version != 2 {
        bail!("only spin_manifest_version = 2 is supported");
    }
    let mut app_vars = HashMap::new();
    for (name, var) in &raw.variables {
        if !valid_variable_name(name) {
            bail!("variable {name:?}: names are lower-case letters, digits and underscores");
        }
        if var.required && var.default.is_some() {
            bail!("variable {name}: a required variable cannot have a default");
        }
        app_vars.insert(name.clone(), resolve(name, var, env));
    }
    let mut components = BTreeMap::new();
    for (id, c) in raw.component {
        let mut variables = HashMap::new();
        for (name, template) in &c.variables {
            if !valid_variable_name(name) {
                bail!("component {id}: variable {name:?} is not a valid name");
            }
            variables.insert(name.clone(), expand(template, &app_vars, &id)?);
        }
        let component = Component {
            id: id.clone(),
            source: base.join(&c.source),
            key_value_stores: c.key_value_stores,
            sqlite_databases: c.sqlite_databases,
            // Spin expands application variables here too (e.g. "{{ redis_address }}").
            allowed_outbound_hosts: c.allowed_outbound_hosts.iter().map(|h| expand(h, &app_vars, &id)).collect::<Result<_>>()?,
            variables,
        };
        components.insert(id, component);
    }
    let mut routes = Vec::new();
    for t in raw.trigger.http {
        if !components.contains_key(&t.component) {
            bail!("route {}: no component named {:?}", t.route, t.component);
        }
        if routes.iter().any(|r: &HttpRoute| r.route == t.route) {
            bail!("route {} is declared twice", t.route);
        }
        routes.push(HttpRoute { route: t.route, component: t.component });
    }
    let default_address = raw.application.trigger.redis.map(|r| r.address);
    let mut redis = Vec::new();
    for t in raw.trigger.redis {
        if !components.contains_key(&t.component) {
            bail!("redis trigger on {}: no component named {:?}", t.channel, t.component);
        }
        if routes.iter().any(|r| r.component == t.component) {
            bail!("component {} cannot serve both HTTP and Redis triggers", t.component);
        }
        let template = t.address.or_else(|| default_address.clone()).with_context(|| {
            format!("redis trigger on {}: no address (set [application.trigger.redis] address or the trigger's own)", t.channel)
        })?;
        let address = expand(&template, &app_vars, &t.component)?;
        redis.push(RedisTrigger { address, channel: expand(&t.channel, &app_vars, &t.component)?, component: t.component });
    }
    Ok(App { name: raw.application.name, routes, redis, components, variables: app_vars })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "demo"
[variables]
secret = { required = true, secret = true }
ttl = { default = "3600s" }
[[trigger.http]]
route = "/login"
component = "login"
[component.login]
source = "target/login.wasm"
sqlite_databases = ["default"]
[component.login.variables]
jwt_secret = "{{ secret }}"
jwt_expiration_time = "{{ttl}}"
"#;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| vars.get(k).cloned()
    }

    #[test]
    fn variables_come_from_the_environment_then_defaults() {
        let app = parse(MANIFEST, Path::new("/app"), &env(&[("SPIN_VARIABLE_SECRET", "s3cr3t")])).unwrap();
        let login = &app.components["login"];
        assert_eq!(login.variables["jwt_secret"], "s3cr3t");
        assert_eq!(login.variables["jwt_expiration_time"], "3600s");
        assert_eq!(login.source, Path::new("/app/target/login.wasm"));
        assert_eq!(login.sqlite_databases, ["default"]);
        assert!(login.key_value_stores.is_empty());
        assert_eq!(app.routes, [HttpRoute { route: "/login".into(), component: "login".into() }]);
    }

    #[test]
    fn this_host_puts_its_own_defaults_before_the_manifests_and_the_environment_before_both() {
        let manifest = MANIFEST.replace("[variables]", "[variables]\naudit_spool = { default = \"redis\" }");
        let resolved = |vars: &[(&str, &str)]| parse(&manifest, Path::new("."), &env(vars)).unwrap().variables["audit_spool"].clone();
        assert_eq!(resolved(&[("SPIN_VARIABLE_SECRET", "s")]).as_deref(), Some("key-value"));
        assert_eq!(resolved(&[("SPIN_VARIABLE_SECRET", "s"), ("SPIN_VARIABLE_AUDIT_SPOOL", "redis")]).as_deref(), Some("redis"));
    }

    #[test]
    fn a_required_variable_without_a_value_stops_startup() {
        let err = parse(MANIFEST, Path::new("."), &env(&[])).unwrap_err().to_string();
        assert!(err.contains("SPIN_VARIABLE_SECRET"), "{err}");
    }

    #[test]
    fn redis_triggers_take_the_application_address_and_variables() {
        let manifest = format!(
            "{MANIFEST}{}",
            r#"
[variables.redis_address]
default = "redis://127.0.0.1:6379"
[[trigger.redis]]
channel = "jobs"
component = "worker"
[component.worker]
source = "worker.wasm"
allowed_outbound_hosts = ["{{ redis_address }}"]
"#
        )
        .replace("name = \"demo\"", "name = \"demo\"\n[application.trigger.redis]\naddress = \"{{ redis_address }}\"");
        let app = parse(&manifest, Path::new("."), &env(&[("SPIN_VARIABLE_SECRET", "x")])).unwrap();
        assert_eq!(app.redis, [RedisTrigger { address: "redis://127.0.0.1:6379".into(), channel: "jobs".into(), component: "worker".into() }]);
        assert_eq!(app.components["worker"].allowed_outbound_hosts, ["redis://127.0.0.1:6379"]);
        let unknown = manifest.replace("channel = \"jobs\"", "channel = \"jobs\"\nqueue = 1");
        assert!(parse(&unknown, Path::new("."), &env(&[("SPIN_VARIABLE_SECRET", "x")])).is_err());
    }

    #[test]
    fn routes_must_name_real_components() {
        let bad = MANIFEST.replace("component = \"login\"", "component = \"nope\"");
        assert!(parse(&bad, Path::new("."), &env(&[("SPIN_VARIABLE_SECRET", "x")])).is_err());
    }
}
