//! The deployment kit, checked with the tools an AWS engineer would point at it.
//!
//! - `action-definition.json` is validated against CodePipeline's own service model (botocore)
//!   and against the properties the worker reads (`ACTION_PROPERTIES`), so neither can drift.
//! - `cloudformation/custom-action.yaml` declares the very same action type.
//! - Every template passes `cfn-lint` with no error and no warning.
//! - `worker-fleet.yaml` keeps its security baseline (least-privilege role, IMDSv2, encrypted root
//!   volume, no key pair, no inbound rules, logs with retention, drain on termination); its user
//!   data passes `shellcheck`, and its lifecycle watcher is run against a fake instance metadata
//!   service to prove it stops the worker before completing the lifecycle action.
//! - The fleet's CloudWatch alarms and dashboard and `examples/grafana-dashboard.json` use only
//!   series the worker really exports (its `/metrics` rendered here), and the CloudWatch ones only
//!   as the agent's Prometheus scrape ships them (name selected, dimensions declared).
//! - `pipeline-example.yaml` configures the action with declared properties only and never holds
//!   the registry password in plain text.
//! - The `Dockerfile` passes `hadolint` and keeps its shape (multi-stage, pinned, non-root).
//!
//! The Python tools are pinned in `tests/python-tools.txt` and installed by the first test that
//! needs them into a venv under `target/py-tools`, which later runs reuse while the pins are
//! unchanged. That needs Python 3 with the `venv` module (set `PYTHON` to choose the interpreter)
//! and access to PyPI. The watcher test needs `bash` and `curl`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use pipeline_publisher::cli::Cli;
use pipeline_publisher::pipeline::properties::ACTION_PROPERTIES;
use serde_json::Value;

const ACTION_DEFINITION: &str = "action-definition.json";
const CUSTOM_ACTION_TEMPLATE: &str = "cloudformation/custom-action.yaml";
const WORKER_FLEET_TEMPLATE: &str = "cloudformation/worker-fleet.yaml";
const PIPELINE_EXAMPLE_TEMPLATE: &str = "cloudformation/pipeline-example.yaml";
const DOCKERFILE: &str = "Dockerfile";
const PYTHON_TOOLS: &str = "tests/python-tools.txt";

/// Files the fleet's user data writes on the instance.
const WORKER_UNIT_FILE: &str = "/etc/systemd/system/pipeline-publisher.service";
const WORKER_ENV_FILE: &str = "/etc/pipeline-publisher/worker.env";
const WATCHER_UNIT_FILE: &str = "/etc/systemd/system/pipeline-publisher-lifecycle.service";
const WATCHER_ENV_FILE: &str = "/etc/pipeline-publisher/lifecycle.env";
const WATCHER_SCRIPT: &str = "/usr/local/libexec/pipeline-publisher/lifecycle-watch";
const CLOUDWATCH_AGENT_CONFIG: &str =
    "/opt/aws/amazon-cloudwatch-agent/etc/pipeline-publisher.json";

/// The only actions the worker role may hold on `"*"`: they name a job id, which has no ARN.
const JOB_ACTIONS: [&str; 4] = [
    "codepipeline:AcknowledgeJob",
    "codepipeline:GetJobDetails",
    "codepipeline:PutJobSuccessResult",
    "codepipeline:PutJobFailureResult",
];

// ---------------------------------------------------------------------------------------------
// Files of the repository

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn read_repo_file(relative: &str) -> String {
    fs::read_to_string(repo_path(relative))
        .unwrap_or_else(|error| panic!("cannot read {relative}: {error}"))
}

fn action_definition() -> Value {
    serde_json::from_str(&read_repo_file(ACTION_DEFINITION))
        .unwrap_or_else(|error| panic!("{ACTION_DEFINITION} is not valid JSON: {error}"))
}

fn combined_output(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_no_problems(problems: &[String], what: &str) {
    assert!(
        problems.is_empty(),
        "{what}:\n  - {}",
        problems.join("\n  - ")
    );
}

// ---------------------------------------------------------------------------------------------
// The pinned Python tools, installed once per test binary

/// A venv holding the tools pinned in `tests/python-tools.txt`.
struct PythonTools {
    venv: PathBuf,
}

/// Written into the venv after a successful install: the requirements it was built from, so a
/// later run knows whether it can reuse it.
const INSTALLED_REQUIREMENTS: &str = "installed-requirements.txt";

impl PythonTools {
    /// Runs a Python snippet with the venv's interpreter (`python -c SCRIPT ARGS...`).
    fn run_python(&self, script: &str, args: &[&OsStr]) -> Output {
        Command::new(self.venv.join("bin").join("python"))
            .arg("-c")
            .arg(script)
            .args(args)
            .output()
            .unwrap_or_else(|error| {
                panic!("cannot run the python of {}: {error}", self.venv.display())
            })
    }

    /// A command for one of the binaries the wheels install (`hadolint`, `shellcheck`).
    fn tool(&self, name: &str) -> Command {
        Command::new(self.venv.join("bin").join(name))
    }
}

fn python_tools() -> &'static PythonTools {
    static TOOLS: OnceLock<Result<PythonTools, String>> = OnceLock::new();
    match TOOLS.get_or_init(install_python_tools) {
        Ok(tools) => tools,
        Err(message) => panic!("{message}"),
    }
}

fn venv_is_current(venv: &Path, requirements: &str) -> bool {
    venv.join("bin").join("python").exists()
        && fs::read_to_string(venv.join(INSTALLED_REQUIREMENTS))
            .is_ok_and(|installed| installed == requirements)
}

fn install_python_tools() -> Result<PythonTools, String> {
    let requirements_path = repo_path(PYTHON_TOOLS);
    let requirements = fs::read_to_string(&requirements_path)
        .map_err(|error| format!("cannot read {PYTHON_TOOLS}: {error}"))?;
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .ok_or("CARGO_TARGET_TMPDIR has no parent directory")?
        .to_path_buf();
    let venv = target_dir.join("py-tools");
    if venv_is_current(&venv, &requirements) {
        return Ok(PythonTools { venv });
    }

    // Build in a private directory and move it into place, so that another `cargo test` running
    // at the same time never uses a half-installed venv. The venv's python finds its packages
    // relative to itself and the tools are invoked through it (or are plain binaries), so the
    // move does not break it.
    let staging = target_dir.join(format!("py-tools.{}.staging", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let interpreter = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    let hint = "the deployment kit tests install their tools from PyPI and need Python 3 with the \
                venv module (Debian: apt-get install python3-venv; set PYTHON=/path/to/python3 to \
                choose the interpreter)";
    run_setup_step(
        Command::new(&interpreter)
            .arg("-m")
            .arg("venv")
            .arg(&staging),
        "create a venv for the Python tools",
        hint,
    )?;
    run_setup_step(
        Command::new(staging.join("bin").join("python"))
            .args(["-m", "pip", "install", "--disable-pip-version-check"])
            .args(["--no-input", "--quiet", "--requirement"])
            .arg(&requirements_path),
        &format!("pip install the tools pinned in {PYTHON_TOOLS}"),
        hint,
    )?;
    fs::write(staging.join(INSTALLED_REQUIREMENTS), &requirements)
        .map_err(|error| format!("cannot write into {}: {error}", staging.display()))?;

    if venv.exists() {
        if venv_is_current(&venv, &requirements) {
            // Another test run finished first.
            let _ = fs::remove_dir_all(&staging);
            return Ok(PythonTools { venv });
        }
        let retired = target_dir.join(format!("py-tools.{}.retired", std::process::id()));
        fs::rename(&venv, &retired)
            .map_err(|error| format!("cannot move the outdated {}: {error}", venv.display()))?;
        let _ = fs::remove_dir_all(&retired);
    }
    match fs::rename(&staging, &venv) {
        Ok(()) => Ok(PythonTools { venv }),
        Err(_) if venv_is_current(&venv, &requirements) => {
            let _ = fs::remove_dir_all(&staging);
            Ok(PythonTools { venv })
        }
        Err(error) => Err(format!(
            "cannot move {} to {}: {error}",
            staging.display(),
            venv.display()
        )),
    }
}

fn run_setup_step(command: &mut Command, what: &str, hint: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|error| format!("could not {what}: {error}\n{hint}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "could not {what} ({}):\n{}\n{hint}",
            output.status,
            combined_output(&output)
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// CloudFormation templates as JSON

/// Parses a template with cfn-lint's own decoder, which understands the short-form intrinsic
/// functions (`!Ref`, `!Sub`, ...) and prints the template as long-form JSON.
const DECODE_TEMPLATE: &str = r#"
import json, sys
from cfnlint.decode import decode
template, matches = decode(sys.argv[1])
if matches:
    print("\n".join(str(match) for match in matches), file=sys.stderr)
    sys.exit(1)
json.dump(template, sys.stdout)
"#;

const CFN_LINT: &str = r#"
import sys
from cfnlint.runner import main
sys.argv = ["cfn-lint", "--", *sys.argv[1:]]
sys.exit(main())
"#;

fn template(relative: &str) -> Value {
    let path = repo_path(relative);
    let output = python_tools().run_python(DECODE_TEMPLATE, &[path.as_os_str()]);
    assert!(
        output.status.success(),
        "{relative} cannot be parsed as a CloudFormation template:\n{}",
        combined_output(&output)
    );
    serde_json::from_slice(&output.stdout).expect("the decoder prints JSON")
}

fn resources_of_type<'a>(template: &'a Value, resource_type: &str) -> Vec<(&'a str, &'a Value)> {
    template["Resources"]
        .as_object()
        .map(|resources| {
            resources
                .iter()
                .filter(|(_, resource)| resource["Type"] == resource_type)
                .map(|(name, resource)| (name.as_str(), resource))
                .collect()
        })
        .unwrap_or_default()
}

fn single_resource<'a>(
    template: &'a Value,
    resource_type: &str,
    file: &str,
) -> (&'a str, &'a Value) {
    let found = resources_of_type(template, resource_type);
    assert_eq!(
        found.len(),
        1,
        "{file} should declare exactly one {resource_type}, it declares {}",
        found.len()
    );
    found[0]
}

fn parameter_default(template: &Value, name: &str) -> Option<String> {
    match &template["Parameters"][name]["Default"] {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// A plain string, or the default of the parameter a `{"Ref": ...}` names.
fn resolve_simple(template: &Value, value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Object(map) => map
            .get("Ref")
            .and_then(Value::as_str)
            .and_then(|name| parameter_default(template, name)),
        _ => None,
    }
}

fn assert_cfn_lint_clean(relative: &str) {
    let path = repo_path(relative);
    let output = python_tools().run_python(CFN_LINT, &[path.as_os_str()]);
    assert!(
        output.status.success(),
        "cfn-lint reports errors or warnings for {relative} ({}); fix every finding below:\n{}",
        output.status,
        combined_output(&output)
    );
}

/// CloudFormation spells the action type's fields in PascalCase, the API in camelCase; the
/// structure is otherwise identical.
fn camel_case_keys(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let mut chars = key.chars();
                    let key = match chars.next() {
                        Some(first) => first.to_lowercase().chain(chars).collect(),
                        None => String::new(),
                    };
                    (key, camel_case_keys(value))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(camel_case_keys).collect()),
        other => other.clone(),
    }
}

/// Lists every place where two JSON values differ, as `path: left vs right`.
fn json_differences(path: &str, left: &Value, right: &Value, out: &mut Vec<String>) {
    match (left, right) {
        (Value::Object(left_map), Value::Object(right_map)) => {
            let keys: BTreeSet<&String> = left_map.keys().chain(right_map.keys()).collect();
            for key in keys {
                json_differences(
                    &format!("{path}.{key}"),
                    left_map.get(key).unwrap_or(&Value::Null),
                    right_map.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(left_items), Value::Array(right_items))
            if left_items.len() == right_items.len() =>
        {
            for (index, (left_item, right_item)) in left_items.iter().zip(right_items).enumerate() {
                json_differences(&format!("{path}[{index}]"), left_item, right_item, out);
            }
        }
        _ if left == right => {}
        _ => out.push(format!("{path}: {left} vs {right}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Fn::Sub rendering and the fleet's user data

/// Values for rendering `Fn::Sub` strings the way CloudFormation would for one stack.
fn substitution_values(template: &Value) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = [
        ("AWS::StackName", "publisher-fleet"),
        ("AWS::Region", "eu-west-1"),
        ("AWS::AccountId", "123456789012"),
        ("AWS::Partition", "aws"),
        ("AWS::URLSuffix", "amazonaws.com"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    for name in template["Parameters"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.keys())
    {
        let value = parameter_default(template, name).unwrap_or_else(|| match name.as_str() {
            "WorkerVersion" => "0.1.0".to_owned(),
            "WorkerDownloadUrl" => "https://downloads.example.com/pipeline-publisher".to_owned(),
            "WorkerSha256" => "0".repeat(64),
            other => format!("{other}-value"),
        });
        values.insert(name.clone(), value);
    }
    for name in template["Resources"]
        .as_object()
        .into_iter()
        .flat_map(|r| r.keys())
    {
        values.insert(name.clone(), format!("{name}-ref"));
    }
    values
}

/// Renders a `Fn::Sub` template string: `${Name}` and `${Resource.Attribute}` are replaced,
/// `${!Literal}` becomes `${Literal}`.
fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut rendered = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        rendered.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .unwrap_or_else(|| panic!("unterminated ${{ in a Fn::Sub string near {after:.40}"));
        let name = &after[..end];
        if let Some(literal) = name.strip_prefix('!') {
            rendered.push_str("${");
            rendered.push_str(literal);
            rendered.push('}');
        } else if let Some(value) = values.get(name) {
            rendered.push_str(value);
        } else if let Some((resource, _attribute)) = name.split_once('.')
            && values.contains_key(resource)
        {
            rendered.push_str(&format!("{}-value", name.replace('.', "-")));
        } else {
            panic!(
                "Fn::Sub refers to ${{{name}}}, which is no parameter, resource or pseudo parameter"
            );
        }
        rest = &after[end + 1..];
    }
    rendered.push_str(rest);
    rendered
}

fn render_sub(value: &Value, values: &BTreeMap<String, String>) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Object(map) => match map.get("Fn::Sub") {
            Some(Value::String(text)) => substitute(text, values),
            Some(Value::Array(parts)) => {
                let mut values = values.clone();
                if let Some(variables) = parts.get(1).and_then(Value::as_object) {
                    for (name, variable) in variables {
                        let text = variable
                            .as_str()
                            .map_or_else(|| format!("{name}-value"), str::to_owned);
                        values.insert(name.clone(), text);
                    }
                }
                substitute(
                    parts[0].as_str().expect("Fn::Sub's first item is a string"),
                    &values,
                )
            }
            _ => panic!("expected a string or Fn::Sub, found {value}"),
        },
        _ => panic!("expected a string or Fn::Sub, found {value}"),
    }
}

/// The fleet's user data script as one instance would receive it.
struct UserData {
    script: String,
}

/// One `cat > FILE <<EOF ... EOF` block of the user data.
struct Heredoc {
    /// `<<'EOF'`: the body is written verbatim; otherwise bash expands `$VARIABLES` in it.
    quoted: bool,
    body: String,
}

impl UserData {
    fn of_fleet(fleet: &Value, overrides: &[(&str, &str)]) -> Self {
        let mut values = substitution_values(fleet);
        for (name, value) in overrides {
            values.insert((*name).to_owned(), (*value).to_owned());
        }
        let (_, launch_template) =
            single_resource(fleet, "AWS::EC2::LaunchTemplate", WORKER_FLEET_TEMPLATE);
        let user_data = &launch_template["Properties"]["LaunchTemplateData"]["UserData"];
        let encoded = user_data.get("Fn::Base64").unwrap_or_else(|| {
            panic!("the launch template's UserData should be Fn::Base64 of a script")
        });
        UserData {
            script: render_sub(encoded, &values),
        }
    }

    /// The heredoc that writes `file`.
    fn heredoc(&self, file: &str) -> Heredoc {
        let opening = format!("cat > {file} <<");
        let mut lines = self.script.lines();
        let header = lines
            .by_ref()
            .find(|line| line.trim_start().starts_with(&opening))
            .unwrap_or_else(|| panic!("the user data no longer writes {file} with `{opening}EOF`"));
        let delimiter = header.rsplit("<<").next().unwrap_or_default().trim();
        let quoted = delimiter.starts_with('\'');
        let delimiter = delimiter.trim_matches('\'');
        let body: Vec<&str> = lines.take_while(|line| *line != delimiter).collect();
        Heredoc {
            quoted,
            body: body.join("\n") + "\n",
        }
    }

    /// The assignments at the top of the script (comments, `set`, `NAME=value`), which the
    /// unquoted heredocs expand.
    fn variables(&self) -> String {
        self.script
            .lines()
            .take_while(|line| {
                let line = line.trim();
                line.is_empty()
                    || line.starts_with('#')
                    || line.starts_with("set ")
                    || line.split_once('=').is_some_and(|(name, _)| {
                        name.chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                    })
            })
            .map(|line| format!("{line}\n"))
            .collect()
    }

    /// The content `file` gets on the instance: unquoted heredocs are expanded by bash with the
    /// script's own variables, exactly as cloud-init would.
    fn file(&self, file: &str) -> String {
        let heredoc = self.heredoc(file);
        if heredoc.quoted {
            return heredoc.body;
        }
        let script = format!(
            "{}cat <<KIT_TEST_EOF\n{}KIT_TEST_EOF\n",
            self.variables(),
            heredoc.body
        );
        let output = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("bash runs");
        assert!(
            output.status.success(),
            "expanding {file} from the user data failed:\n{}",
            combined_output(&output)
        );
        String::from_utf8(output.stdout).expect("UTF-8")
    }
}

/// `KEY=VALUE` lines (systemd units and environment files); later keys win.
fn key_values(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.starts_with('['))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// Every environment variable `pipeline-publisher worker` reads, from its clap definition.
fn worker_environment_variables() -> BTreeSet<String> {
    let cli = Cli::command();
    let worker = cli
        .find_subcommand("worker")
        .expect("the CLI has a `worker` subcommand");
    cli.get_arguments()
        .chain(worker.get_arguments())
        .filter_map(|argument| argument.get_env())
        .map(|name| name.to_string_lossy().into_owned())
        .collect()
}

/// The default value of a `pipeline-publisher worker` flag, by clap id.
fn worker_flag_default(id: &str) -> String {
    let cli = Cli::command();
    let worker = cli
        .find_subcommand("worker")
        .expect("a `worker` subcommand");
    let argument = worker
        .get_arguments()
        .find(|argument| argument.get_id() == id)
        .unwrap_or_else(|| panic!("`pipeline-publisher worker` has no `{id}` flag any more"));
    argument
        .get_default_values()
        .first()
        .map(|value| value.to_string_lossy().into_owned())
        .unwrap_or_else(|| panic!("`pipeline-publisher worker --{id}` has no default"))
}

// ---------------------------------------------------------------------------------------------
// The action type and its configuration properties

/// One configuration property as a file declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DeclaredProperty {
    name: String,
    required: bool,
    secret: bool,
    key: bool,
    queryable: bool,
    description: String,
}

fn properties_the_worker_reads() -> Vec<DeclaredProperty> {
    ACTION_PROPERTIES
        .iter()
        .map(|spec| DeclaredProperty {
            name: spec.name.to_owned(),
            required: spec.required,
            secret: spec.secret,
            key: spec.key,
            // The worker polls without a query parameter, so no property is queryable.
            queryable: false,
            description: spec.description.to_owned(),
        })
        .collect()
}

/// The `configurationProperties` of an action type in the API's (camelCase) shape.
fn declared_properties(action_type: &Value) -> Vec<DeclaredProperty> {
    action_type["configurationProperties"]
        .as_array()
        .map(|properties| {
            properties
                .iter()
                .map(|property| DeclaredProperty {
                    name: property["name"].as_str().unwrap_or_default().to_owned(),
                    required: property["required"].as_bool().unwrap_or(false),
                    secret: property["secret"].as_bool().unwrap_or(false),
                    key: property["key"].as_bool().unwrap_or(false),
                    queryable: property["queryable"].as_bool().unwrap_or(false),
                    description: property["description"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn property_drift(file: &str, declared: &[DeclaredProperty]) -> Vec<String> {
    let expected = properties_the_worker_reads();
    let mut problems = Vec::new();
    for want in &expected {
        match declared.iter().find(|have| have.name == want.name) {
            None => problems.push(format!(
                "{} is read by the worker but not declared in {file}: add it with required={}, \
                 secret={}, key={}, queryable=false and the description {:?}",
                want.name, want.required, want.secret, want.key, want.description
            )),
            Some(have) if have != want => problems.push(format!(
                "{} in {file} is {have:?}, but src/pipeline/properties.rs declares {want:?}",
                want.name
            )),
            Some(_) => {}
        }
    }
    let mut seen = BTreeSet::new();
    for have in declared {
        if !seen.insert(have.name.as_str()) {
            problems.push(format!("{} is declared twice in {file}", have.name));
        }
        if !expected.iter().any(|want| want.name == have.name) {
            problems.push(format!(
                "{} is declared in {file} but the worker never reads it: remove it, or add it to \
                 ACTION_PROPERTIES and to the configuration parser",
                have.name
            ));
        }
    }
    let declared_order: Vec<&str> = declared.iter().map(|p| p.name.as_str()).collect();
    let expected_order: Vec<&str> = expected.iter().map(|p| p.name.as_str()).collect();
    if problems.is_empty() && declared_order != expected_order {
        problems.push(format!(
            "{file} declares the properties in the order {declared_order:?}; the console shows \
             them in declaration order, so use ACTION_PROPERTIES' order {expected_order:?}"
        ));
    }
    problems
}

/// Checks `action-definition.json` against botocore's model of `CreateCustomActionType`.
/// `ParamValidator` checks types, required and unknown members and minimums; the model also
/// states maximum lengths and counts, enums and patterns, which CodePipeline enforces on its side,
/// so those are checked here too.
const VALIDATE_ACTION_DEFINITION: &str = r#"
import json, re, sys
import botocore, botocore.session
from botocore.validate import ParamValidator

with open(sys.argv[1]) as file:
    request = json.load(file)
model = botocore.session.get_session().get_service_model("codepipeline")
shape = model.operation_model("CreateCustomActionType").input_shape
problems = []
report = ParamValidator().validate(request, shape)
if report.has_errors():
    problems.append(report.generate_report())

def check(value, shape, where):
    meta = shape.metadata
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in value.items():
            if name in shape.members:
                check(member, shape.members[name], where + "." + name)
    elif shape.type_name == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{where}: {len(value)} items, the API allows at most {meta['max']}")
        for index, item in enumerate(value):
            check(item, shape.member, f"{where}[{index}]")
    elif shape.type_name == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            problems.append(f"{where}: {len(value)} characters, the API allows at most {meta['max']}")
        if "enum" in meta and value not in meta["enum"]:
            problems.append(f"{where}: {value!r} is not one of {meta['enum']}")
        if "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            problems.append(f"{where}: {value!r} does not match the pattern {meta['pattern']}")
    elif shape.type_name in ("integer", "long") and isinstance(value, int):
        if "max" in meta and value > meta["max"]:
            problems.append(f"{where}: {value} is above the maximum {meta['max']}")

check(request, shape, "request")
if problems:
    print(f"botocore {botocore.__version__}, CodePipeline API {model.api_version}:")
    print("\n".join(problems))
    sys.exit(1)
"#;

#[test]
fn action_definition_is_a_valid_create_custom_action_type_request() {
    let path = repo_path(ACTION_DEFINITION);
    let output = python_tools().run_python(VALIDATE_ACTION_DEFINITION, &[path.as_os_str()]);
    assert!(
        output.status.success(),
        "{ACTION_DEFINITION} is not a valid CreateCustomActionType request; \
         `aws codepipeline create-custom-action-type --cli-input-json file://{ACTION_DEFINITION}` \
         would reject it:\n{}",
        combined_output(&output)
    );
}

#[test]
fn action_definition_follows_the_custom_action_rules() {
    let definition = action_definition();
    let mut problems = Vec::new();

    // The worker polls for Custom/<category>/<provider>/<version> by default; the definition
    // must create exactly that action type.
    for (field, flag) in [
        ("category", "category"),
        ("provider", "provider"),
        ("version", "action_version"),
    ] {
        let default = worker_flag_default(flag);
        if definition[field] != default.as_str() {
            problems.push(format!(
                "{field} is {}, but `pipeline-publisher worker` polls for {default:?} by default",
                definition[field]
            ));
        }
    }

    let declared = declared_properties(&definition);
    if declared.len() > 10 {
        problems.push(format!(
            "{} properties; CodePipeline allows 10",
            declared.len()
        ));
    }
    let queryable: Vec<&DeclaredProperty> = declared.iter().filter(|p| p.queryable).collect();
    if queryable.len() > 1 {
        problems.push("more than one queryable property; CodePipeline allows one".to_owned());
    }
    for property in queryable {
        if !property.required || property.secret {
            problems.push(format!(
                "{} is queryable, so it must be required and not secret",
                property.name
            ));
        }
    }
    for property in &declared {
        if property.description.chars().count() > 160 {
            problems.push(format!(
                "{}'s description is over 160 characters",
                property.name
            ));
        }
    }

    // URL templates may only use required, non-secret properties (CodePipeline shows them to
    // everyone who can view the pipeline).
    let settings = &definition["settings"];
    for (template_name, allows_execution_id) in
        [("entityUrlTemplate", false), ("executionUrlTemplate", true)]
    {
        let Some(url) = settings[template_name].as_str() else {
            problems.push(format!("settings.{template_name} is missing"));
            continue;
        };
        if !url.starts_with("{Config:ArtifactoryHost}/") {
            problems.push(format!(
                "settings.{template_name} should start at the registry's base URL, \
                 {{Config:ArtifactoryHost}}/"
            ));
        }
        let mut rest = url;
        while let Some(start) = rest.find('{') {
            let end = rest[start..]
                .find('}')
                .map_or(rest.len(), |end| start + end);
            let placeholder = &rest[start + 1..end];
            rest = &rest[(end + 1).min(rest.len())..];
            if placeholder == "ExternalExecutionId" && allows_execution_id {
                continue;
            }
            match placeholder
                .strip_prefix("Config:")
                .and_then(|name| declared.iter().find(|p| p.name == name))
            {
                Some(property) if property.required && !property.secret => {}
                Some(property) => problems.push(format!(
                    "settings.{template_name} uses {{Config:{}}}, which is not required or is secret",
                    property.name
                )),
                None => problems.push(format!(
                    "settings.{template_name} uses {{{placeholder}}}, which is no declared property"
                )),
            }
        }
    }
    if !settings["executionUrlTemplate"]
        .as_str()
        .is_some_and(|url| url.contains("{ExternalExecutionId}"))
    {
        problems.push(
            "settings.executionUrlTemplate should link to the published build with {ExternalExecutionId}"
                .to_owned(),
        );
    }

    // One to five input artifacts (the build outputs), at most one output artifact.
    for (field, minimum, maximum) in [
        ("inputArtifactDetails", 1, 5),
        ("outputArtifactDetails", 0, 1),
    ] {
        let details = &definition[field];
        if details["minimumCount"] != minimum || details["maximumCount"] != maximum {
            problems.push(format!(
                "{field} is {details}; the issue fixes it at minimumCount {minimum}, maximumCount {maximum}"
            ));
        }
    }
    assert_no_problems(
        &problems,
        &format!("{ACTION_DEFINITION} breaks CodePipeline's rules"),
    );
}

#[test]
fn action_definition_declares_exactly_the_properties_the_worker_reads() {
    let problems = property_drift(
        ACTION_DEFINITION,
        &declared_properties(&action_definition()),
    );
    assert_no_problems(
        &problems,
        &format!("{ACTION_DEFINITION} and ACTION_PROPERTIES (src/pipeline/properties.rs) disagree"),
    );
}

#[test]
fn custom_action_template_declares_exactly_the_properties_the_worker_reads() {
    let template = template(CUSTOM_ACTION_TEMPLATE);
    let (_, resource) = single_resource(
        &template,
        "AWS::CodePipeline::CustomActionType",
        CUSTOM_ACTION_TEMPLATE,
    );
    let action_type = camel_case_keys(&resource["Properties"]);
    let problems = property_drift(CUSTOM_ACTION_TEMPLATE, &declared_properties(&action_type));
    assert_no_problems(
        &problems,
        &format!(
            "{CUSTOM_ACTION_TEMPLATE} and ACTION_PROPERTIES (src/pipeline/properties.rs) disagree"
        ),
    );
}

#[test]
fn custom_action_template_matches_action_definition() {
    let template = template(CUSTOM_ACTION_TEMPLATE);
    let (_, resource) = single_resource(
        &template,
        "AWS::CodePipeline::CustomActionType",
        CUSTOM_ACTION_TEMPLATE,
    );
    let from_template = camel_case_keys(&resource["Properties"]);
    let mut differences = Vec::new();
    json_differences("", &from_template, &action_definition(), &mut differences);
    assert_no_problems(
        &differences,
        &format!(
            "the AWS::CodePipeline::CustomActionType in {CUSTOM_ACTION_TEMPLATE} (left, keys in \
             camelCase) differs from {ACTION_DEFINITION} (right); make them identical"
        ),
    );
}

// ---------------------------------------------------------------------------------------------
// cfn-lint

#[test]
fn custom_action_template_passes_cfn_lint() {
    assert_cfn_lint_clean(CUSTOM_ACTION_TEMPLATE);
}

#[test]
fn worker_fleet_template_passes_cfn_lint() {
    assert_cfn_lint_clean(WORKER_FLEET_TEMPLATE);
}

#[test]
fn pipeline_example_template_passes_cfn_lint() {
    assert_cfn_lint_clean(PIPELINE_EXAMPLE_TEMPLATE);
}

// ---------------------------------------------------------------------------------------------
// The worker fleet

/// Every statement of every identity policy in a template, with where it comes from.
fn policy_statements(template: &Value) -> Vec<(String, Value)> {
    let mut statements = Vec::new();
    let mut add_document = |origin: String, document: &Value| match &document["Statement"] {
        Value::Array(items) => statements.extend(items.iter().map(|s| (origin.clone(), s.clone()))),
        Value::Null => {}
        single => statements.push((origin, single.clone())),
    };
    for (name, role) in resources_of_type(template, "AWS::IAM::Role") {
        for policy in role["Properties"]["Policies"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let policy_name = policy["PolicyName"].as_str().unwrap_or("?");
            add_document(format!("{name}/{policy_name}"), &policy["PolicyDocument"]);
        }
    }
    for resource_type in [
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
        "AWS::IAM::RolePolicy",
    ] {
        for (name, policy) in resources_of_type(template, resource_type) {
            add_document(name.to_owned(), &policy["Properties"]["PolicyDocument"]);
        }
    }
    statements
}

fn as_list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

#[test]
fn worker_role_is_least_privilege() {
    let fleet = template(WORKER_FLEET_TEMPLATE);
    let statements = policy_statements(&fleet);
    let mut problems = Vec::new();
    let action_type_arn = serde_json::json!({
        "Fn::Sub": "arn:${AWS::Partition}:codepipeline:${AWS::Region}:${AWS::AccountId}:actiontype:Custom/Deploy/${ActionProvider}/${ActionVersion}"
    });
    let mut polls_scoped = false;

    for (origin, statement) in &statements {
        let sid = statement["Sid"].as_str().unwrap_or("(no Sid)");
        let at = format!("{origin} {sid}");
        if statement.get("NotAction").is_some() || statement.get("NotResource").is_some() {
            problems.push(format!(
                "{at} uses NotAction/NotResource; list what is allowed instead"
            ));
        }
        if statement["Effect"] != "Allow" {
            continue;
        }
        let actions: Vec<String> = as_list(&statement["Action"])
            .iter()
            .map(|action| action.as_str().unwrap_or_default().to_owned())
            .collect();
        let resources = as_list(&statement["Resource"]);
        for action in &actions {
            let lower = action.to_ascii_lowercase();
            if action.contains('*') {
                problems.push(format!(
                    "{at} grants the wildcard action {action}; name each action"
                ));
            }
            if lower.starts_with("s3:") {
                problems.push(format!(
                    "{at} grants {action}: the worker reads artifacts with each job's own \
                     credentials, so its role needs no S3 permission"
                ));
            }
            if lower.starts_with("kms:") {
                problems.push(format!(
                    "{at} grants {action}: the worker needs no KMS permission"
                ));
            }
        }
        if actions
            .iter()
            .any(|action| action == "codepipeline:PollForJobs")
        {
            if resources == [action_type_arn.clone()] {
                polls_scoped = true;
            } else {
                problems.push(format!(
                    "{at} grants codepipeline:PollForJobs on {resources:?}; scope it to the action \
                     type alone: {action_type_arn}"
                ));
            }
        }
        if resources.iter().any(|resource| resource == "*") {
            for action in &actions {
                if !JOB_ACTIONS.contains(&action.as_str()) {
                    problems.push(format!(
                        "{at} grants {action} on \"*\"; only {JOB_ACTIONS:?} may use \"*\" (they \
                         take a job id, which has no ARN)"
                    ));
                }
            }
        }
        if actions
            .iter()
            .any(|action| action == "autoscaling:CompleteLifecycleAction")
        {
            let scoped = resources.iter().all(|resource| {
                resource["Fn::Sub"].as_str().is_some_and(|arn| {
                    arn.contains(":autoScalingGroup:")
                        && arn.ends_with("autoScalingGroupName/${AWS::StackName}-workers")
                })
            });
            if !scoped {
                problems.push(format!(
                    "{at} grants autoscaling:CompleteLifecycleAction on {resources:?}; scope it to \
                     the worker group's ARN"
                ));
            }
        }
        if actions.iter().any(|action| action.starts_with("logs:")) {
            let scoped = resources
                .iter()
                .all(|resource| resource.to_string().contains("WorkerLogGroup"));
            if !scoped {
                problems.push(format!(
                    "{at} grants CloudWatch Logs actions beyond the fleet's log group: \
                     {resources:?}"
                ));
            }
        }
    }
    if !polls_scoped {
        problems.push(format!(
            "no statement grants codepipeline:PollForJobs on {action_type_arn}; the worker cannot poll"
        ));
    }
    let granted: BTreeSet<String> = statements
        .iter()
        .flat_map(|(_, statement)| as_list(&statement["Action"]))
        .filter_map(|action| action.as_str().map(str::to_owned))
        .collect();
    for action in JOB_ACTIONS {
        if !granted.contains(action) {
            problems.push(format!(
                "nothing grants {action}, which the worker calls for every job"
            ));
        }
    }

    // Managed policies: Session Manager only.
    for (name, role) in resources_of_type(&fleet, "AWS::IAM::Role") {
        for arn in as_list(&role["Properties"]["ManagedPolicyArns"]) {
            let text = arn["Fn::Sub"]
                .as_str()
                .or(arn.as_str())
                .unwrap_or_default()
                .to_owned();
            if !text.ends_with(":iam::aws:policy/AmazonSSMManagedInstanceCore") {
                problems.push(format!(
                    "{name} attaches the managed policy {arn}; only \
                     AmazonSSMManagedInstanceCore (Session Manager) belongs here"
                ));
            }
        }
    }
    let (_, group) = single_resource(
        &fleet,
        "AWS::AutoScaling::AutoScalingGroup",
        WORKER_FLEET_TEMPLATE,
    );
    if group["Properties"]["AutoScalingGroupName"]["Fn::Sub"] != "${AWS::StackName}-workers" {
        problems.push(
            "the group's AutoScalingGroupName should stay ${AWS::StackName}-workers: the role's \
             autoscaling:CompleteLifecycleAction grant and the watcher's ASG_NAME use that name"
                .to_owned(),
        );
    }
    assert_no_problems(
        &problems,
        &format!("the worker role in {WORKER_FLEET_TEMPLATE} is not least privilege"),
    );
}

#[test]
fn worker_fleet_meets_the_security_and_operations_baseline() {
    let fleet = template(WORKER_FLEET_TEMPLATE);
    let mut problems = Vec::new();

    let (_, launch_template) =
        single_resource(&fleet, "AWS::EC2::LaunchTemplate", WORKER_FLEET_TEMPLATE);
    let data = &launch_template["Properties"]["LaunchTemplateData"];
    if data["MetadataOptions"]["HttpTokens"] != "required" {
        problems.push(
            "LaunchTemplateData.MetadataOptions.HttpTokens must be `required` (IMDSv2 only)"
                .to_owned(),
        );
    }
    if data.get("KeyName").is_some() {
        problems.push(
            "the launch template names a key pair; there is no SSH, operators use Session Manager"
                .to_owned(),
        );
    }
    let mappings = as_list(&data["BlockDeviceMappings"]);
    if mappings.is_empty() {
        problems.push(
            "the launch template should map the root volume (/dev/xvda) to set encryption"
                .to_owned(),
        );
    }
    for mapping in &mappings {
        if mapping["Ebs"]["Encrypted"] != true {
            problems.push(format!("volume {} is not encrypted", mapping["DeviceName"]));
        }
    }
    let image = parameter_default(&fleet, "ImageId").unwrap_or_default();
    if !image.starts_with("/aws/service/ami-amazon-linux-latest/al2023-ami-") {
        problems.push(format!(
            "the ImageId parameter should default to the public SSM parameter of the latest Amazon \
             Linux 2023 AMI, not {image:?}"
        ));
    }
    if fleet["Parameters"]["ImageId"]["Type"] != "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>" {
        problems.push(
            "ImageId should be an AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>".to_owned(),
        );
    }

    for (name, group) in resources_of_type(&fleet, "AWS::EC2::SecurityGroup") {
        if group["Properties"].get("SecurityGroupIngress").is_some() {
            problems.push(format!(
                "security group {name} has inbound rules; workers accept no connections"
            ));
        }
    }
    if !resources_of_type(&fleet, "AWS::EC2::SecurityGroupIngress").is_empty() {
        problems.push(
            "the template adds an AWS::EC2::SecurityGroupIngress; workers accept no connections"
                .to_owned(),
        );
    }
    if !resources_of_type(&fleet, "AWS::AutoScaling::LaunchConfiguration").is_empty() {
        problems.push("launch configurations are deprecated; use the launch template".to_owned());
    }
    let log_groups = resources_of_type(&fleet, "AWS::Logs::LogGroup");
    if log_groups.is_empty() {
        problems.push("the fleet should create its own log group".to_owned());
    }
    for (name, log_group) in log_groups {
        if log_group["Properties"].get("RetentionInDays").is_none() {
            problems.push(format!(
                "log group {name} keeps logs forever; set RetentionInDays"
            ));
        }
    }

    let (group_name, group) = single_resource(
        &fleet,
        "AWS::AutoScaling::AutoScalingGroup",
        WORKER_FLEET_TEMPLATE,
    );
    if group["Properties"]["LaunchTemplate"].is_null() {
        problems.push("the Auto Scaling group should launch from the launch template".to_owned());
    }
    if group["CreationPolicy"]["ResourceSignal"].is_null() {
        problems
            .push("the group needs a CreationPolicy with a ResourceSignal (cfn-signal)".to_owned());
    }
    let rolling = &group["UpdatePolicy"]["AutoScalingRollingUpdate"];
    if rolling.is_null() || rolling["WaitOnResourceSignals"] != true {
        problems.push(
            "the group needs an AutoScalingRollingUpdate policy with WaitOnResourceSignals: true"
                .to_owned(),
        );
    }
    let hooks = as_list(&group["Properties"]["LifecycleHookSpecificationList"]);
    let terminating: Vec<&Value> = hooks
        .iter()
        .filter(|hook| hook["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING")
        .collect();
    match terminating.as_slice() {
        [hook] => {
            if hook["HeartbeatTimeout"] != serde_json::json!({"Ref": "DrainTimeoutSeconds"}) {
                problems.push(
                    "the termination hook's HeartbeatTimeout should be Ref DrainTimeoutSeconds, \
                     the value the worker's drain timeout is derived from"
                        .to_owned(),
                );
            }
            if hook["DefaultResult"] != "CONTINUE" {
                problems.push("the termination hook's DefaultResult should be CONTINUE".to_owned());
            }
        }
        _ => problems.push(format!(
            "{group_name} should have exactly one autoscaling:EC2_INSTANCE_TERMINATING lifecycle hook"
        )),
    }

    // What the user data installs, for the smallest, default and largest drain timeout.
    let drain_parameter = &fleet["Parameters"]["DrainTimeoutSeconds"];
    let known_variables = worker_environment_variables();
    for heartbeat in [
        &drain_parameter["MinValue"],
        &drain_parameter["Default"],
        &drain_parameter["MaxValue"],
    ] {
        let heartbeat_seconds = heartbeat
            .as_u64()
            .or_else(|| heartbeat.as_str().and_then(|text| text.parse().ok()))
            .expect("DrainTimeoutSeconds has a numeric MinValue, Default and MaxValue");
        let heartbeat_text = heartbeat_seconds.to_string();
        let user_data = UserData::of_fleet(&fleet, &[("DrainTimeoutSeconds", &heartbeat_text)]);
        let unit = key_values(&user_data.file(WORKER_UNIT_FILE));
        let environment = key_values(&user_data.file(WORKER_ENV_FILE));
        let drain = environment
            .get("PIPELINE_PUBLISHER_DRAIN_TIMEOUT")
            .map(|text| {
                humantime::parse_duration(text).unwrap_or_else(|error| {
                    panic!("{WORKER_ENV_FILE}: DRAIN_TIMEOUT={text} is no duration: {error}")
                })
            });
        let stop_timeout = unit
            .get("TimeoutStopSec")
            .and_then(|text| text.parse::<u64>().ok());
        match (drain, stop_timeout) {
            (Some(drain), Some(stop_timeout)) => {
                let drain = drain.as_secs();
                if !(drain + 10 <= stop_timeout && stop_timeout + 10 <= heartbeat_seconds) {
                    problems.push(format!(
                        "with DrainTimeoutSeconds={heartbeat_seconds}: the worker drains for {drain} s, \
                         systemd waits TimeoutStopSec={stop_timeout} s; keep drain < TimeoutStopSec < \
                         heartbeat with room to fail unfinished jobs and complete the lifecycle action"
                    ));
                }
            }
            _ => problems.push(format!(
                "{WORKER_ENV_FILE} should set PIPELINE_PUBLISHER_DRAIN_TIMEOUT and \
                 {WORKER_UNIT_FILE} TimeoutStopSec (seconds)"
            )),
        }
        if heartbeat != &drain_parameter["Default"] {
            continue;
        }
        if unit.get("Restart").map(String::as_str) != Some("always") {
            problems.push(format!("{WORKER_UNIT_FILE} should say Restart=always"));
        }
        if !unit
            .get("ExecStart")
            .is_some_and(|command| command.ends_with("pipeline-publisher worker"))
        {
            problems.push(format!(
                "{WORKER_UNIT_FILE} should run `pipeline-publisher worker`"
            ));
        }
        if unit.get("EnvironmentFile").map(String::as_str) != Some(WORKER_ENV_FILE) {
            problems.push(format!(
                "{WORKER_UNIT_FILE} should read EnvironmentFile={WORKER_ENV_FILE}"
            ));
        }
        let runs_unprivileged = unit.get("DynamicUser").is_some_and(|v| v == "yes")
            || unit
                .get("User")
                .is_some_and(|user| user != "root" && user != "0");
        if !runs_unprivileged {
            problems.push(format!(
                "{WORKER_UNIT_FILE} should run the worker as an unprivileged user"
            ));
        }
        for (name, value) in &environment {
            if name.starts_with("PIPELINE_PUBLISHER_") && !known_variables.contains(name) {
                problems.push(format!(
                    "{WORKER_ENV_FILE} sets {name}={value}, which `pipeline-publisher worker` does not read"
                ));
            }
        }
        if environment
            .get("PIPELINE_PUBLISHER_LOG_FORMAT")
            .map(String::as_str)
            != Some("json")
        {
            problems.push(format!(
                "{WORKER_ENV_FILE} should set PIPELINE_PUBLISHER_LOG_FORMAT=json"
            ));
        }
        if !environment.contains_key("AWS_REGION") {
            problems.push(format!("{WORKER_ENV_FILE} should set AWS_REGION"));
        }

        // Logs: the worker's output file is what the CloudWatch agent ships to the log group.
        let agent: Value = serde_json::from_str(&user_data.file(CLOUDWATCH_AGENT_CONFIG))
            .unwrap_or_else(|error| panic!("{CLOUDWATCH_AGENT_CONFIG} is not JSON: {error}"));
        let shipped: Vec<(String, String)> =
            as_list(&agent["logs"]["logs_collected"]["files"]["collect_list"])
                .iter()
                .map(|entry| {
                    (
                        entry["file_path"].as_str().unwrap_or_default().to_owned(),
                        entry["log_group_name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .collect();
        let worker_log = unit
            .get("StandardOutput")
            .and_then(|output| output.strip_prefix("append:"))
            .unwrap_or_default()
            .to_owned();
        let log_group = substitution_values(&fleet)["WorkerLogGroup"].clone();
        if !shipped.contains(&(worker_log.clone(), log_group.clone())) {
            problems.push(format!(
                "the worker writes its log to {worker_log:?} (StandardOutput=append:...), but the \
                 CloudWatch agent ships {shipped:?}, not that file to the fleet's log group"
            ));
        }

        // cfn-signal only after the worker has been started and checked.
        let script = &user_data.script;
        let position = |needle: &str| script.find(needle);
        match (
            position("systemctl enable --now"),
            position("is-active"),
            script.rfind("signal 0 "),
        ) {
            (Some(start), Some(check), Some(signal)) if start < check && check < signal => {}
            _ => problems.push(
                "the user data should start the worker, check it is running, and only then \
                 `signal 0` (cfn-signal success)"
                    .to_owned(),
            ),
        }
        if !script.contains(&format!("--resource {group_name}")) {
            problems.push(format!(
                "cfn-signal should signal the group's logical id, --resource {group_name}"
            ));
        }
        if !script.contains("sha256sum --check") {
            problems.push(
                "the user data should verify the downloaded binary with sha256sum --check"
                    .to_owned(),
            );
        }
        if script.len() > 16 * 1024 {
            problems.push(format!(
                "the user data is {} bytes; EC2 allows 16 KiB",
                script.len()
            ));
        }
    }
    assert_no_problems(
        &problems,
        &format!("{WORKER_FLEET_TEMPLATE} misses its baseline"),
    );
}

#[test]
fn worker_fleet_user_data_passes_shellcheck() {
    let fleet = template(WORKER_FLEET_TEMPLATE);
    let user_data = UserData::of_fleet(&fleet, &[]);
    let directory = tempfile::tempdir().expect("a temp dir");
    let mut scripts = vec![("user-data".to_owned(), user_data.script.clone())];
    for line in user_data.script.lines() {
        if let Some(rest) = line.trim_start().strip_prefix("cat > ")
            && let Some((file, _)) = rest.split_once(" <<'")
        {
            let heredoc = user_data.heredoc(file);
            if heredoc.body.starts_with("#!/bin/bash") {
                scripts.push((file.to_owned(), heredoc.body));
            }
        }
    }
    assert!(
        scripts.len() >= 2,
        "expected the lifecycle watcher script inside the user data"
    );
    let mut problems = Vec::new();
    for (index, (name, text)) in scripts.iter().enumerate() {
        let path = directory.path().join(format!("script-{index}.sh"));
        fs::write(&path, text).expect("write the script");
        let output = python_tools()
            .tool("shellcheck")
            .args(["--shell=bash", "--severity=style"])
            .arg(&path)
            .output()
            .expect("shellcheck runs");
        if !output.status.success() {
            problems.push(format!(
                "{name} (rendered with the parameters' defaults):\n{}",
                combined_output(&output)
            ));
        }
    }
    assert_no_problems(
        &problems,
        &format!("shellcheck finds problems in the user data of {WORKER_FLEET_TEMPLATE}"),
    );
}

// ---------------------------------------------------------------------------------------------
// The lifecycle watcher against a fake instance metadata service

const IMDS_TOKEN: &str = "fake-imds-session-token";
const INSTANCE_ID: &str = "i-0fa1ce0fa1ce0fa1c";
/// The fake answers `InService` this many times, then `Terminated`.
const POLLS_BEFORE_TERMINATION: usize = 3;

#[derive(Default)]
struct ImdsRecord {
    lifecycle_polls: usize,
    tokens_issued: usize,
    /// Requests refused because they came without an IMDSv2 session token.
    refused: Vec<String>,
}

/// IMDSv2 on 127.0.0.1: a session token from `PUT /latest/api/token`, metadata only with it.
struct FakeImds {
    endpoint: String,
    record: Arc<Mutex<ImdsRecord>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeImds {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let endpoint = format!("http://{}", listener.local_addr().expect("local address"));
        let record = Arc::new(Mutex::new(ImdsRecord::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let record = Arc::clone(&record);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => answer_imds_request(stream, &record),
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        FakeImds {
            endpoint,
            record,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeImds {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer_imds_request(mut stream: TcpStream, record: &Mutex<ImdsRecord>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let mut request_line = lines.next().unwrap_or_default().split_whitespace();
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();

    let mut record = record.lock().expect("record lock");
    let (status, body) = if method == "PUT" && path == "/latest/api/token" {
        if headers.contains_key("x-aws-ec2-metadata-token-ttl-seconds") {
            record.tokens_issued += 1;
            ("200 OK", IMDS_TOKEN)
        } else {
            record
                .refused
                .push(format!("{method} {path} without a token TTL"));
            ("400 Bad Request", "")
        }
    } else if headers.get("x-aws-ec2-metadata-token").map(String::as_str) != Some(IMDS_TOKEN) {
        record
            .refused
            .push(format!("{method} {path} without the session token"));
        ("401 Unauthorized", "")
    } else {
        match (method.as_str(), path.as_str()) {
            ("GET", "/latest/meta-data/instance-id") => ("200 OK", INSTANCE_ID),
            ("GET", "/latest/meta-data/autoscaling/target-lifecycle-state") => {
                record.lifecycle_polls += 1;
                if record.lifecycle_polls > POLLS_BEFORE_TERMINATION {
                    ("200 OK", "Terminated")
                } else {
                    ("200 OK", "InService")
                }
            }
            _ => ("404 Not Found", ""),
        }
    };
    drop(record);
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn write_executable(path: &Path, text: &str) {
    fs::write(path, text).expect("write an executable");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod 755");
}

#[test]
fn lifecycle_watcher_drains_the_worker_then_completes_the_lifecycle_action() {
    let fleet = template(WORKER_FLEET_TEMPLATE);
    let values = substitution_values(&fleet);
    let user_data = UserData::of_fleet(&fleet, &[]);
    let (_, group) = single_resource(
        &fleet,
        "AWS::AutoScaling::AutoScalingGroup",
        WORKER_FLEET_TEMPLATE,
    );
    let group_name = render_sub(&group["Properties"]["AutoScalingGroupName"], &values);
    let hook_name = as_list(&group["Properties"]["LifecycleHookSpecificationList"])
        .iter()
        .find(|hook| hook["LifecycleTransition"] == "autoscaling:EC2_INSTANCE_TERMINATING")
        .and_then(|hook| hook["LifecycleHookName"].as_str().map(str::to_owned))
        .expect("a termination lifecycle hook with a name");

    // The watcher's unit and settings, as the instance gets them.
    let unit = key_values(&user_data.file(WATCHER_UNIT_FILE));
    assert_eq!(
        unit.get("ExecStart").map(String::as_str),
        Some(WATCHER_SCRIPT),
        "{WATCHER_UNIT_FILE} should run {WATCHER_SCRIPT}"
    );
    assert_eq!(
        unit.get("EnvironmentFile").map(String::as_str),
        Some(WATCHER_ENV_FILE),
        "{WATCHER_UNIT_FILE} should read {WATCHER_ENV_FILE}"
    );
    let settings = key_values(&user_data.file(WATCHER_ENV_FILE));
    assert_eq!(
        settings.get("ASG_NAME"),
        Some(&group_name),
        "{WATCHER_ENV_FILE}'s ASG_NAME must name the group the template creates"
    );
    assert_eq!(
        settings.get("HOOK_NAME"),
        Some(&hook_name),
        "{WATCHER_ENV_FILE}'s HOOK_NAME must name the group's termination hook"
    );
    assert_eq!(
        settings.get("WORKER_UNIT").map(String::as_str),
        Some("pipeline-publisher.service")
    );
    assert_eq!(
        settings.get("IMDS_ENDPOINT").map(String::as_str),
        Some("http://169.254.169.254")
    );

    // Run the real script with a fake IMDS and stand-ins for systemctl and the AWS CLI that
    // record their calls; the first complete-lifecycle-action fails, as a throttled call would.
    let imds = FakeImds::start();
    let directory = tempfile::tempdir().expect("a temp dir");
    let bin = directory.path().join("bin");
    fs::create_dir(&bin).expect("mkdir bin");
    let calls = directory.path().join("calls.log");
    let script = directory.path().join("lifecycle-watch");
    write_executable(&script, &user_data.file(WATCHER_SCRIPT));
    write_executable(
        &bin.join("systemctl"),
        "#!/bin/bash\necho \"systemctl $*\" >> \"$FAKE_CALLS\"\n",
    );
    write_executable(
        &bin.join("aws"),
        "#!/bin/bash\n\
         echo \"aws $*\" >> \"$FAKE_CALLS\"\n\
         if [ ! -e \"$FAKE_CALLS.aws-failed-once\" ]; then\n\
           touch \"$FAKE_CALLS.aws-failed-once\"\n\
           echo 'An error occurred (Throttling): Rate exceeded' >&2\n\
           exit 255\n\
         fi\n",
    );
    let stdout = fs::File::create(directory.path().join("stdout.log")).expect("stdout log");
    let stderr = fs::File::create(directory.path().join("stderr.log")).expect("stderr log");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new("bash")
        .arg(&script)
        .env_clear()
        .env("PATH", path)
        .envs(&settings)
        .env("IMDS_ENDPOINT", &imds.endpoint)
        .env("POLL_SECONDS", "0.05")
        .env("FAKE_CALLS", &calls)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("bash runs the watcher");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the watcher") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let log = format!(
        "{}{}",
        fs::read_to_string(directory.path().join("stdout.log")).unwrap_or_default(),
        fs::read_to_string(directory.path().join("stderr.log")).unwrap_or_default()
    );
    let calls = fs::read_to_string(&calls).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("the watcher did not finish within 60 s:\n{log}"));
    assert!(
        status.success(),
        "the watcher exited with {status}:\n{log}\ncalls:\n{calls}"
    );

    let complete = format!(
        "aws autoscaling complete-lifecycle-action --region {} --auto-scaling-group-name {group_name} \
         --lifecycle-hook-name {hook_name} --instance-id {INSTANCE_ID} --lifecycle-action-result CONTINUE",
        settings["AWS_REGION"]
    );
    let expected = format!("systemctl stop pipeline-publisher.service\n{complete}\n{complete}\n");
    assert_eq!(
        calls, expected,
        "the watcher should stop the worker (so it drains) and then complete the lifecycle \
         action, retrying a failed call; its log:\n{log}"
    );
    let record = imds.record.lock().expect("record lock");
    assert!(
        record.refused.is_empty(),
        "the watcher made IMDSv1-style requests: {:?}",
        record.refused
    );
    assert_eq!(
        record.lifecycle_polls,
        POLLS_BEFORE_TERMINATION + 1,
        "the watcher should stop polling once the state is Terminated"
    );
    assert!(record.tokens_issued >= 1);
}

// ---------------------------------------------------------------------------------------------
// Alarms and dashboards: every series they use is one the worker exports

const GRAFANA_DASHBOARD: &str = "examples/grafana-dashboard.json";
const PROMETHEUS_SCRAPE_CONFIG: &str = "/opt/aws/amazon-cloudwatch-agent/etc/prometheus.yaml";
/// The CloudWatch namespace the agent puts the worker's series in.
const WORKER_NAMESPACE: &str = "PipelinePublisher";

/// Every series name the worker's `/metrics` has, with its Prometheus type, read from the real
/// exposition (a histogram contributes its `_bucket`, `_sum` and `_count` series).
fn exported_series() -> BTreeMap<String, String> {
    let text = pipeline_publisher::metrics::Metrics::new().render();
    let mut series = BTreeMap::new();
    for line in text.lines() {
        let Some(declaration) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = declaration
            .split_once(' ')
            .unwrap_or_else(|| panic!("malformed TYPE line in /metrics: {line}"));
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                series.insert(format!("{name}{suffix}"), kind.to_owned());
            }
        } else {
            series.insert(name.to_owned(), kind.to_owned());
        }
    }
    assert!(
        !series.is_empty(),
        "the worker's /metrics has no series:\n{text}"
    );
    series
}

/// The `pipeline_publisher_*` names a PromQL expression mentions.
fn series_in_promql(expression: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expression;
    while let Some(start) = rest.find("pipeline_publisher_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// Every `expr` of a Grafana dashboard, wherever it sits (panels, rows, templating).
fn promql_expressions(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("expr" | "query" | "definition", Value::String(text)) => {
                        out.push(text.clone())
                    }
                    _ => promql_expressions(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| promql_expressions(item, out)),
        _ => {}
    }
}

/// The names a metric selector of the agent's `emf_processor` matches: each is `^...$` with
/// `(a|b)` groups, expanded here rather than pulling in a regex engine.
fn selector_names(selector: &str) -> Vec<String> {
    let body = selector
        .strip_prefix('^')
        .and_then(|rest| rest.strip_suffix('$'))
        .unwrap_or_else(|| panic!("metric selector {selector:?} should be anchored ^...$"));
    let mut names = vec![String::new()];
    let mut rest = body;
    while !rest.is_empty() {
        if let Some(group) = rest.strip_prefix('(') {
            let close = group
                .find(')')
                .unwrap_or_else(|| panic!("unclosed group in {selector:?}"));
            let alternatives: Vec<&str> = group[..close].split('|').collect();
            names = names
                .iter()
                .flat_map(|prefix| alternatives.iter().map(move |alt| format!("{prefix}{alt}")))
                .collect();
            rest = &group[close + 1..];
        } else {
            let next = rest.find('(').unwrap_or(rest.len());
            let literal = &rest[..next];
            assert!(
                literal
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "metric selector {selector:?} uses more than literals and (a|b) groups"
            );
            names.iter_mut().for_each(|name| name.push_str(literal));
            rest = &rest[next..];
        }
    }
    names
}

/// A CloudWatch metric a template uses: namespace, name and dimension names (sorted).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct UsedMetric {
    namespace: String,
    name: String,
    dimensions: Vec<String>,
    used_by: String,
}

fn alarm_metric(metric: &Value, used_by: &str) -> Option<UsedMetric> {
    let mut dimensions: Vec<String> = as_list(&metric["Dimensions"])
        .iter()
        .filter_map(|dimension| dimension["Name"].as_str().map(str::to_owned))
        .collect();
    dimensions.sort();
    Some(UsedMetric {
        namespace: metric["Namespace"].as_str()?.to_owned(),
        name: metric["MetricName"].as_str()?.to_owned(),
        dimensions,
        used_by: used_by.to_owned(),
    })
}

/// The metrics each alarm reads (a plain metric, or the `MetricStat`s of metric math).
fn alarm_metrics(fleet: &Value) -> Vec<UsedMetric> {
    let mut used = Vec::new();
    for (name, alarm) in resources_of_type(fleet, "AWS::CloudWatch::Alarm") {
        let properties = &alarm["Properties"];
        used.extend(alarm_metric(properties, name));
        for query in as_list(&properties["Metrics"]) {
            used.extend(alarm_metric(&query["MetricStat"]["Metric"], name));
        }
    }
    used
}

/// The metrics the CloudWatch dashboard's widgets plot, from its rendered `DashboardBody`.
fn dashboard_metrics(fleet: &Value) -> Vec<UsedMetric> {
    let (name, dashboard) =
        single_resource(fleet, "AWS::CloudWatch::Dashboard", WORKER_FLEET_TEMPLATE);
    let body = render_sub(
        &dashboard["Properties"]["DashboardBody"],
        &substitution_values(fleet),
    );
    let body: Value = serde_json::from_str(&body)
        .unwrap_or_else(|error| panic!("{name}'s DashboardBody is not JSON: {error}\n{body}"));
    let mut used = Vec::new();
    for widget in as_list(&body["widgets"]) {
        for metric in as_list(&widget["properties"]["metrics"]) {
            let parts: Vec<String> = metric
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map_while(|item| item.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            assert!(
                parts.len() >= 2 && parts.len().is_multiple_of(2) && parts[0] != "...",
                "{name}: write each metric out in full ([namespace, name, dimension, value, ...]), \
                 found {metric}"
            );
            let mut dimensions: Vec<String> = parts[2..].iter().step_by(2).cloned().collect();
            dimensions.sort();
            used.push(UsedMetric {
                namespace: parts[0].clone(),
                name: parts[1].clone(),
                dimensions,
                used_by: name.to_owned(),
            });
        }
    }
    used
}

#[test]
fn alarms_and_dashboards_use_only_series_the_worker_exports_and_ships() {
    let fleet = template(WORKER_FLEET_TEMPLATE);
    let exported = exported_series();
    let user_data = UserData::of_fleet(&fleet, &[]);
    let mut problems = Vec::new();

    // What the CloudWatch agent scrapes, and which series it ships with which dimensions.
    let worker_env = key_values(&user_data.file(WORKER_ENV_FILE));
    let listen = worker_env
        .get("PIPELINE_PUBLISHER_METRICS_LISTEN")
        .cloned()
        .unwrap_or_default();
    if listen.is_empty() {
        problems.push(format!(
            "{WORKER_ENV_FILE} sets no PIPELINE_PUBLISHER_METRICS_LISTEN: the worker serves no /metrics"
        ));
    }
    let scrape = user_data.file(PROMETHEUS_SCRAPE_CONFIG);
    if !scrape.contains(&format!("targets: [\"{listen}\"]")) {
        problems.push(format!(
            "{PROMETHEUS_SCRAPE_CONFIG} should scrape the worker at {listen:?}:\n{scrape}"
        ));
    }
    if !scrape.contains("job_name: pipeline-publisher") {
        problems.push(format!(
            "{PROMETHEUS_SCRAPE_CONFIG} should name its job pipeline-publisher"
        ));
    }
    let agent: Value = serde_json::from_str(&user_data.file(CLOUDWATCH_AGENT_CONFIG))
        .unwrap_or_else(|error| panic!("{CLOUDWATCH_AGENT_CONFIG} is not JSON: {error}"));
    let prometheus = &agent["logs"]["metrics_collected"]["prometheus"];
    if prometheus["prometheus_config_path"] != PROMETHEUS_SCRAPE_CONFIG {
        problems.push(format!(
            "the agent's prometheus_config_path should be {PROMETHEUS_SCRAPE_CONFIG}, is {}",
            prometheus["prometheus_config_path"]
        ));
    }
    let emf = &prometheus["emf_processor"];
    if emf["metric_namespace"] != WORKER_NAMESPACE {
        problems.push(format!(
            "the agent should ship the worker's series to the {WORKER_NAMESPACE} namespace, not {}",
            emf["metric_namespace"]
        ));
    }
    // Series name → dimension sets the agent publishes it with.
    let mut shipped: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for declaration in as_list(&emf["metric_declaration"]) {
        if declaration["label_matcher"] != "^pipeline-publisher$" {
            problems.push(format!(
                "a metric declaration matches another job: {declaration}"
            ));
        }
        let dimension_sets: Vec<Vec<String>> = as_list(&declaration["dimensions"])
            .iter()
            .map(|set| {
                let mut names: Vec<String> = as_list(set)
                    .iter()
                    .filter_map(|name| name.as_str().map(str::to_owned))
                    .collect();
                names.sort();
                names
            })
            .collect();
        for selector in as_list(&declaration["metric_selectors"]) {
            for name in selector_names(selector.as_str().unwrap_or_default()) {
                match exported.get(&name).map(String::as_str) {
                    Some("counter" | "gauge") => {}
                    Some(kind) => problems.push(format!(
                        "the agent selects {name}, a {kind}; its Prometheus input ships counters \
                         and gauges only"
                    )),
                    None => problems.push(format!(
                        "the agent selects {name}, which the worker does not export"
                    )),
                }
                shipped
                    .entry(name)
                    .or_default()
                    .extend(dimension_sets.clone());
            }
        }
    }

    // Alarms and the CloudWatch dashboard: worker series only as the agent ships them.
    let used: Vec<UsedMetric> = alarm_metrics(&fleet)
        .into_iter()
        .chain(dashboard_metrics(&fleet))
        .collect();
    for metric in &used {
        match metric.namespace.as_str() {
            WORKER_NAMESPACE => match shipped.get(&metric.name) {
                None => problems.push(format!(
                    "{} uses {}, which the CloudWatch agent does not ship (or the worker does not export)",
                    metric.used_by, metric.name
                )),
                Some(sets) if !sets.contains(&metric.dimensions) => problems.push(format!(
                    "{} reads {} with dimensions {:?}; the agent publishes it with {sets:?}",
                    metric.used_by, metric.name, metric.dimensions
                )),
                Some(_) => {}
            },
            "AWS/AutoScaling" if metric.name == "GroupInServiceInstances" => {}
            other => problems.push(format!(
                "{} uses {other}/{}, which nothing in the fleet publishes",
                metric.used_by, metric.name
            )),
        }
    }

    // The four alarms of the kit, each notifying the optional topic.
    for (what, namespace, metric_name) in [
        (
            "failed jobs",
            WORKER_NAMESPACE,
            "pipeline_publisher_jobs_failed_total",
        ),
        (
            "undelivered results",
            WORKER_NAMESPACE,
            "pipeline_publisher_job_results_undelivered_total",
        ),
        (
            "no successful poll",
            WORKER_NAMESPACE,
            "pipeline_publisher_last_successful_poll_timestamp_seconds",
        ),
        (
            "unhealthy instances",
            "AWS/AutoScaling",
            "GroupInServiceInstances",
        ),
    ] {
        if !alarm_metrics(&fleet)
            .iter()
            .any(|metric| metric.namespace == namespace && metric.name == metric_name)
        {
            problems.push(format!(
                "no alarm watches {what} ({namespace}/{metric_name})"
            ));
        }
    }
    if fleet["Conditions"]["HasAlarmTopic"]
        != serde_json::json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]})
    {
        problems.push("the HasAlarmTopic condition should be AlarmTopicArn != \"\"".to_owned());
    }
    if parameter_default(&fleet, "AlarmTopicArn").as_deref() != Some("") {
        problems.push("AlarmTopicArn should be optional (default empty)".to_owned());
    }
    let notify = serde_json::json!({"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]});
    for (name, alarm) in resources_of_type(&fleet, "AWS::CloudWatch::Alarm") {
        for actions in ["AlarmActions", "OKActions"] {
            if alarm["Properties"][actions] != notify {
                problems.push(format!(
                    "{name}.{actions} should notify AlarmTopicArn only when it is set: {notify}"
                ));
            }
        }
    }

    // The Grafana dashboard queries only series the worker exports.
    let grafana: Value = serde_json::from_str(&read_repo_file(GRAFANA_DASHBOARD))
        .unwrap_or_else(|error| panic!("{GRAFANA_DASHBOARD} is not JSON: {error}"));
    let mut expressions = Vec::new();
    promql_expressions(&grafana, &mut expressions);
    let queried: BTreeSet<String> = expressions
        .iter()
        .flat_map(|e| series_in_promql(e))
        .collect();
    for name in &queried {
        if !exported.contains_key(name) {
            problems.push(format!(
                "{GRAFANA_DASHBOARD} queries {name}, which the worker does not export"
            ));
        }
    }
    for wanted in [
        "pipeline_publisher_jobs_succeeded_total",
        "pipeline_publisher_jobs_failed_total",
        "pipeline_publisher_job_duration_seconds_bucket",
        "pipeline_publisher_jobs_in_flight",
        "pipeline_publisher_job_api_throttles_total",
        "pipeline_publisher_registry_retries_total",
        "pipeline_publisher_published_bytes_total",
    ] {
        if !queried.contains(wanted) {
            problems.push(format!("{GRAFANA_DASHBOARD} should chart {wanted}"));
        }
    }
    assert_no_problems(
        &problems,
        "the fleet's alarms and dashboards drift from the worker's metrics",
    );
}

// ---------------------------------------------------------------------------------------------
// The example pipeline

/// Why a secret property's value is unsafe, or `None` when it comes from Secrets Manager, an
/// SSM SecureString or a `NoEcho` parameter.
fn plaintext_secret(value: &Value, template: &Value) -> Option<String> {
    let is_dynamic_reference = |text: &str| {
        text.starts_with("{{resolve:secretsmanager:") || text.starts_with("{{resolve:ssm-secure:")
    };
    match value {
        Value::String(text) if is_dynamic_reference(text) => None,
        Value::Object(map) => {
            if let Some(sub) = map.get("Fn::Sub") {
                let text = sub.as_str().or_else(|| sub[0].as_str()).unwrap_or_default();
                return (!is_dynamic_reference(text))
                    .then(|| format!("Fn::Sub {text:?} is no secret reference"));
            }
            if let Some(branches) = map.get("Fn::If").and_then(Value::as_array) {
                return branches
                    .iter()
                    .skip(1)
                    .find_map(|branch| plaintext_secret(branch, template));
            }
            if let Some(parameter) = map.get("Ref").and_then(Value::as_str) {
                return (template["Parameters"][parameter]["NoEcho"] != true)
                    .then(|| format!("parameter {parameter} is not NoEcho"));
            }
            Some(format!("{value} is no secret reference"))
        }
        other => Some(format!("{other} is written into the template")),
    }
}

#[test]
fn pipeline_example_uses_the_action_with_declared_properties_and_no_plaintext_password() {
    let pipeline_template = template(PIPELINE_EXAMPLE_TEMPLATE);
    let definition = action_definition();
    let (_, pipeline) = single_resource(
        &pipeline_template,
        "AWS::CodePipeline::Pipeline",
        PIPELINE_EXAMPLE_TEMPLATE,
    );
    let mut problems = Vec::new();
    let mut custom_actions = 0;
    let stages = as_list(&pipeline["Properties"]["Stages"]);
    for stage in &stages {
        for action in as_list(&stage["Actions"]) {
            let type_id = &action["ActionTypeId"];
            let field =
                |name: &str| resolve_simple(&pipeline_template, &type_id[name]).unwrap_or_default();
            if field("Owner") != "Custom" {
                continue;
            }
            custom_actions += 1;
            let name = action["Name"].as_str().unwrap_or("?").to_owned();
            for (field_name, api_field) in [
                ("Category", "category"),
                ("Provider", "provider"),
                ("Version", "version"),
            ] {
                if field(field_name) != definition[api_field].as_str().unwrap_or_default() {
                    problems.push(format!(
                        "{name}: ActionTypeId.{field_name} is {:?}, the action type's is {}",
                        field(field_name),
                        definition[api_field]
                    ));
                }
            }
            let configuration = action["Configuration"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for key in configuration.keys() {
                if !ACTION_PROPERTIES.iter().any(|spec| spec.name == key) {
                    problems.push(format!(
                        "{name}: configuration {key} is not a property of the action type"
                    ));
                }
            }
            for spec in ACTION_PROPERTIES {
                let value = configuration.get(spec.name);
                if spec.required && value.is_none() {
                    problems.push(format!(
                        "{name}: the required property {} is missing",
                        spec.name
                    ));
                }
                if spec.secret
                    && let Some(value) = value
                    && let Some(why) = plaintext_secret(value, &pipeline_template)
                {
                    problems.push(format!(
                        "{name}: {} must come from Secrets Manager (a {{{{resolve:secretsmanager:...}}}} \
                         dynamic reference) or a NoEcho parameter: {why}",
                        spec.name
                    ));
                }
            }
            let inputs = as_list(&action["InputArtifacts"]).len() as u64;
            let details = &definition["inputArtifactDetails"];
            let (minimum, maximum) = (
                details["minimumCount"].as_u64().unwrap_or(0),
                details["maximumCount"].as_u64().unwrap_or(0),
            );
            if !(minimum..=maximum).contains(&inputs) {
                problems.push(format!(
                    "{name}: {inputs} input artifacts, the action type takes {minimum} to {maximum}"
                ));
            }
        }
    }
    if custom_actions == 0 {
        problems.push("the example pipeline has no action of the custom action type".to_owned());
    }
    assert_no_problems(
        &problems,
        &format!("{PIPELINE_EXAMPLE_TEMPLATE} misuses the action"),
    );
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile

#[test]
fn dockerfile_passes_hadolint() {
    let output = python_tools()
        .tool("hadolint")
        .arg("--no-color")
        .arg(repo_path(DOCKERFILE))
        .output()
        .expect("hadolint runs");
    assert!(
        output.status.success(),
        "hadolint finds problems in the {DOCKERFILE}; fix them (or, for a deliberate exception, \
         add `# hadolint ignore=DLxxxx` with a reason above the line):\n{}",
        combined_output(&output)
    );
}

/// The Dockerfile's instructions with continuation lines joined and comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (current.is_empty() && trimmed.is_empty()) {
            continue;
        }
        if let Some(continued) = trimmed.strip_suffix('\\') {
            current.push_str(continued);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (keyword, rest) = current
            .split_once(char::is_whitespace)
            .unwrap_or((&current, ""));
        instructions.push((keyword.to_ascii_uppercase(), rest.trim().to_owned()));
        current.clear();
    }
    instructions
}

#[test]
fn dockerfile_is_multi_stage_pinned_and_runs_as_non_root() {
    let instructions = dockerfile_instructions(&read_repo_file(DOCKERFILE));
    let mut problems = Vec::new();
    let mut stage_names = BTreeSet::new();
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for (keyword, arguments) in &instructions {
        if keyword == "FROM" {
            let words: Vec<&str> = arguments
                .split_whitespace()
                .filter(|word| !word.starts_with("--"))
                .collect();
            let image = words.first().copied().unwrap_or_default();
            if !stage_names.contains(image) {
                let name_part = image.rsplit('/').next().unwrap_or(image);
                let pinned = image.contains("@sha256:")
                    || name_part
                        .split_once(':')
                        .is_some_and(|(_, tag)| !tag.is_empty() && tag != "latest");
                if !pinned {
                    problems.push(format!(
                        "FROM {image}: pin the base image to a release tag or digest, never latest"
                    ));
                }
            }
            if let [_, as_keyword, name] = words.as_slice()
                && as_keyword.eq_ignore_ascii_case("as")
            {
                stage_names.insert((*name).to_owned());
            }
            stages.push(Vec::new());
        } else if let Some(stage) = stages.last_mut() {
            stage.push((keyword.clone(), arguments.clone()));
        }
    }
    if stages.len() < 2 {
        problems
            .push("the Dockerfile should be multi-stage: build, then a small runtime".to_owned());
    }
    let builder_tag = instructions
        .iter()
        .find(|(keyword, _)| keyword == "FROM")
        .and_then(|(_, arguments)| arguments.split_whitespace().find(|w| !w.starts_with("--")))
        .and_then(|image| image.rsplit('/').next())
        .and_then(|name| name.split_once(':'))
        .map(|(_, tag)| tag.to_owned())
        .unwrap_or_default();
    let exact_version = builder_tag.split(['-', '@']).next().unwrap_or_default();
    if exact_version.split('.').count() != 3
        || !exact_version
            .split('.')
            .all(|part| part.parse::<u32>().is_ok())
    {
        problems.push(format!(
            "the build stage's toolchain tag {builder_tag:?} should start with an exact x.y.z \
             version"
        ));
    }

    let builds_production_worker = instructions.iter().any(|(keyword, arguments)| {
        keyword == "RUN"
            && arguments.contains("cargo build")
            && arguments.contains("--release")
            && arguments.contains("--no-default-features")
    });
    if !builds_production_worker {
        problems.push(
            "the build stage should build the production worker without the stand-ins: \
             cargo build --release --no-default-features"
                .to_owned(),
        );
    }

    let runtime = stages.last().cloned().unwrap_or_default();
    let last = |keyword: &str| {
        runtime
            .iter()
            .rev()
            .find(|(k, _)| k == keyword)
            .map(|(_, arguments)| arguments.clone())
    };
    match last("USER") {
        Some(user) if !["root", "0", "0:0", "root:root"].contains(&user.as_str()) => {}
        other => problems.push(format!(
            "the runtime stage should end with a non-root USER, found {other:?}"
        )),
    }
    let exec_form = |text: Option<String>| {
        text.and_then(|text| serde_json::from_str::<Vec<String>>(&text).ok())
    };
    if exec_form(last("ENTRYPOINT")) != Some(vec!["pipeline-publisher".to_owned()]) {
        problems
            .push("the runtime stage should have ENTRYPOINT [\"pipeline-publisher\"]".to_owned());
    }
    if exec_form(last("CMD")) != Some(vec!["worker".to_owned()]) {
        problems.push("the runtime stage should have CMD [\"worker\"]".to_owned());
    }
    if !runtime
        .iter()
        .any(|(keyword, arguments)| keyword == "COPY" && arguments.contains("--from="))
    {
        problems.push(
            "the runtime stage should COPY --from the build stage, not build itself".to_owned(),
        );
    }
    let known_variables = worker_environment_variables();
    for (_, arguments) in runtime.iter().filter(|(keyword, _)| keyword == "ENV") {
        for pair in arguments.split_whitespace() {
            let name = pair.split('=').next().unwrap_or_default();
            if name.starts_with("PIPELINE_PUBLISHER_") && !known_variables.contains(name) {
                problems.push(format!(
                    "ENV {name}: `pipeline-publisher` reads no such variable"
                ));
            }
        }
    }
    assert_no_problems(&problems, &format!("the {DOCKERFILE} lost its shape"));
}

// ---------------------------------------------------------------------------------------------
// Many accounts and regions: member-account.yaml and the fleet's wake-up queue

mod fleet;
