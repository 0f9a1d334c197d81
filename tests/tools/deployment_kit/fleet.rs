//! One fleet for many accounts: `member-account.yaml` (the action type, the role the fleet
//! assumes, the forwarding rule) and the wake-up half of `worker-fleet.yaml` (queue, event
//! bus, rules, and the worker role's STS and SQS grants), checked for least privilege.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{
    ACTION_DEFINITION, JOB_ACTIONS, UserData, WORKER_ENV_FILE, WORKER_FLEET_TEMPLATE,
    action_definition, as_list, assert_cfn_lint_clean, assert_no_problems, camel_case_keys,
    declared_properties, json_differences, policy_statements, property_drift, resources_of_type,
    single_resource, template, worker_environment_variables,
};

const MEMBER_ACCOUNT_TEMPLATE: &str = "cloudformation/member-account.yaml";

/// The PollForJobs resource of the member role: the action type in any region of the account.
fn member_action_type_arn() -> Value {
    json!({
        "Fn::Sub": "arn:${AWS::Partition}:codepipeline:*:${AWS::AccountId}:actiontype:Custom/Deploy/Artifactory/1"
    })
}

fn actions_of(statement: &Value) -> Vec<String> {
    as_list(&statement["Action"])
        .iter()
        .map(|action| action.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Problems every allowed statement must avoid, wherever it is.
fn general_problems(at: &str, statement: &Value, problems: &mut Vec<String>) {
    if statement.get("NotAction").is_some() || statement.get("NotResource").is_some() {
        problems.push(format!(
            "{at} uses NotAction/NotResource; list what is allowed instead"
        ));
    }
    if statement["Effect"] != "Allow" {
        return;
    }
    for action in actions_of(statement) {
        let lower = action.to_ascii_lowercase();
        if action.contains('*') {
            problems.push(format!("{at} grants the wildcard action {action}"));
        }
        if lower.starts_with("s3:") || lower.starts_with("kms:") {
            problems.push(format!(
                "{at} grants {action}: artifacts are read with each job's own credentials"
            ));
        }
    }
}

/// The `EventPattern` of a rule that forwards the action's STARTED events.
fn started_pattern(provider: Value, version: Value) -> Value {
    json!({
        "source": ["aws.codepipeline"],
        "detail-type": ["CodePipeline Action Execution State Change"],
        "detail": {
            "state": ["STARTED"],
            "type": {
                "owner": ["Custom"],
                "category": ["Deploy"],
                "provider": [provider],
                "version": [version],
            },
        },
    })
}

#[test]
fn member_account_template_passes_cfn_lint() {
    assert_cfn_lint_clean(MEMBER_ACCOUNT_TEMPLATE);
}

#[test]
fn member_account_template_declares_the_same_action_type() {
    let member = template(MEMBER_ACCOUNT_TEMPLATE);
    let (_, resource) = single_resource(
        &member,
        "AWS::CodePipeline::CustomActionType",
        MEMBER_ACCOUNT_TEMPLATE,
    );
    let from_template = camel_case_keys(&resource["Properties"]);
    let mut problems = property_drift(
        MEMBER_ACCOUNT_TEMPLATE,
        &declared_properties(&from_template),
    );
    json_differences("", &from_template, &action_definition(), &mut problems);
    if resource["DeletionPolicy"] != "Retain" || resource["UpdateReplacePolicy"] != "Retain" {
        problems.push(
            "the action type must be retained on delete and on replacement: its version cannot \
             be created again"
                .to_owned(),
        );
    }
    assert_no_problems(
        &problems,
        &format!(
            "the action type in {MEMBER_ACCOUNT_TEMPLATE} (left, camelCase) differs from \
             {ACTION_DEFINITION} or from what the worker reads"
        ),
    );
}

#[test]
fn member_account_roles_are_least_privilege() {
    let member = template(MEMBER_ACCOUNT_TEMPLATE);
    let mut problems = Vec::new();
    let roles = resources_of_type(&member, "AWS::IAM::Role");
    let statements = policy_statements(&member);
    for (origin, statement) in &statements {
        let sid = statement["Sid"].as_str().unwrap_or("(no Sid)");
        general_problems(&format!("{origin} {sid}"), statement, &mut problems);
    }

    // The poller role: trusted by the fleet's role only, with the external id.
    let poller = roles
        .iter()
        .find(|(_, role)| role["Properties"]["RoleName"] == json!({"Ref": "RoleName"}));
    match poller {
        None => problems.push("no role named by the RoleName parameter (the poller)".to_owned()),
        Some((name, role)) => {
            let trust = as_list(&role["Properties"]["AssumeRolePolicyDocument"]["Statement"]);
            let expected = json!({
                "Effect": "Allow",
                "Principal": {"AWS": {"Ref": "FleetRoleArn"}},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}},
            });
            let matches = trust.len() == 1
                && ["Effect", "Principal", "Action", "Condition"]
                    .iter()
                    .all(|key| trust[0][*key] == expected[*key]);
            if !matches {
                problems.push(format!(
                    "{name}'s trust policy should be exactly one statement: {expected}; it is \
                     {trust:?}"
                ));
            }
            let mut granted = BTreeSet::new();
            for (origin, statement) in statements
                .iter()
                .filter(|(origin, _)| origin.starts_with(&format!("{name}/")))
            {
                let actions = actions_of(statement);
                let resources = as_list(&statement["Resource"]);
                for action in &actions {
                    granted.insert(action.clone());
                    if action == "codepipeline:PollForJobs" {
                        if resources != [member_action_type_arn()] {
                            problems.push(format!(
                                "{origin} grants PollForJobs on {resources:?}; scope it to {}",
                                member_action_type_arn()
                            ));
                        }
                    } else if !JOB_ACTIONS.contains(&action.as_str()) {
                        problems.push(format!(
                            "{origin} grants {action}; the poller needs only PollForJobs and \
                             {JOB_ACTIONS:?}"
                        ));
                    }
                }
            }
            let needed: BTreeSet<String> = JOB_ACTIONS
                .iter()
                .map(|action| (*action).to_owned())
                .chain(["codepipeline:PollForJobs".to_owned()])
                .collect();
            if granted != needed {
                problems.push(format!(
                    "{name} grants {granted:?}; it should grant exactly {needed:?}"
                ));
            }
            if !as_list(&role["Properties"]["ManagedPolicyArns"]).is_empty() {
                problems.push(format!("{name} attaches managed policies; it needs none"));
            }
        }
    }

    // Every other role is EventBridge's, and may only put events on the central bus.
    for (name, role) in roles
        .iter()
        .filter(|(_, role)| role["Properties"]["RoleName"] != json!({"Ref": "RoleName"}))
    {
        let trust = as_list(&role["Properties"]["AssumeRolePolicyDocument"]["Statement"]);
        if !trust
            .iter()
            .all(|statement| statement["Principal"] == json!({"Service": "events.amazonaws.com"}))
        {
            problems.push(format!(
                "{name} should be assumable by events.amazonaws.com only: {trust:?}"
            ));
        }
        for (origin, statement) in statements
            .iter()
            .filter(|(origin, _)| origin.starts_with(&format!("{name}/")))
        {
            let scoped = actions_of(statement) == ["events:PutEvents"]
                && as_list(&statement["Resource"]) == [json!({"Ref": "CentralEventBusArn"})];
            if !scoped {
                problems.push(format!(
                    "{origin} should grant only events:PutEvents on the CentralEventBusArn \
                     parameter: {statement}"
                ));
            }
        }
    }

    // The rule forwards exactly the action's STARTED events to the central bus.
    let (rule_name, rule) = single_resource(&member, "AWS::Events::Rule", MEMBER_ACCOUNT_TEMPLATE);
    let pattern = started_pattern(json!("Artifactory"), json!("1"));
    if rule["Properties"]["EventPattern"] != pattern {
        problems.push(format!(
            "{rule_name} should match {pattern}, it matches {}",
            rule["Properties"]["EventPattern"]
        ));
    }
    let targets = as_list(&rule["Properties"]["Targets"]);
    if targets.len() != 1 || targets[0]["Arn"] != json!({"Ref": "CentralEventBusArn"}) {
        problems.push(format!(
            "{rule_name} should target the CentralEventBusArn parameter only: {targets:?}"
        ));
    }
    assert_no_problems(
        &problems,
        &format!("{MEMBER_ACCOUNT_TEMPLATE} is not least privilege"),
    );
}

#[test]
fn fleet_wake_up_and_member_roles_are_least_privilege() {
    let fleet = template(WORKER_FLEET_TEMPLATE);
    let mut problems = Vec::new();
    let (queue_name, queue) = resources_of_type(&fleet, "AWS::SQS::Queue")
        .into_iter()
        .find(|(_, queue)| !queue["Properties"]["RedrivePolicy"].is_null())
        .expect("the fleet declares a wake-up queue with a dead-letter queue");
    let queue_arn = json!({"Fn::GetAtt": [queue_name, "Arn"]});
    let dead_letter = &queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"];
    let dead_letter_name = dead_letter["Fn::GetAtt"][0].as_str().unwrap_or_default();
    if resources_of_type(&fleet, "AWS::SQS::Queue")
        .iter()
        .all(|(name, _)| *name != dead_letter_name)
    {
        problems.push(format!(
            "{queue_name}'s RedrivePolicy should name the fleet's dead-letter queue: {dead_letter}"
        ));
    }

    // The worker role: SQS on its own queue only, STS only on the member roles.
    let mut sqs_granted = BTreeSet::new();
    for (origin, statement) in policy_statements(&fleet) {
        let sid = statement["Sid"].as_str().unwrap_or("(no Sid)");
        let at = format!("{origin} {sid}");
        general_problems(&at, &statement, &mut problems);
        let resources = as_list(&statement["Resource"]);
        for action in actions_of(&statement) {
            let lower = action.to_ascii_lowercase();
            if lower.starts_with("sqs:") {
                sqs_granted.insert(action.clone());
                if resources != [queue_arn.clone()] {
                    problems.push(format!(
                        "{at} grants {action} on {resources:?}; only on {queue_arn}"
                    ));
                }
            }
            if lower.starts_with("sts:") {
                if lower != "sts:assumerole" {
                    problems.push(format!("{at} grants {action}; only sts:AssumeRole"));
                }
                let on_member_roles = resources.iter().all(|resource| {
                    resource["Fn::Sub"]
                        .as_str()
                        .is_some_and(|arn| arn.ends_with(":role/${MemberRoleName}"))
                });
                let condition = &statement["Condition"]["StringEquals"];
                let limited = condition["aws:ResourceAccount"]
                    == json!({"Ref": "MemberAccountIds"})
                    || condition["aws:ResourceOrgID"] == json!({"Ref": "OrganizationId"});
                if resources.is_empty() || !on_member_roles || !limited {
                    problems.push(format!(
                        "{at} grants sts:AssumeRole on {resources:?}; only the MemberRoleName role, \
                         limited to MemberAccountIds (aws:ResourceAccount) or OrganizationId \
                         (aws:ResourceOrgID)"
                    ));
                }
            }
        }
    }
    let expected_sqs: BTreeSet<String> = ["sqs:DeleteMessage", "sqs:ReceiveMessage"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    if sqs_granted != expected_sqs {
        problems.push(format!(
            "the worker role grants {sqs_granted:?} on the queue; it needs exactly {expected_sqs:?}"
        ));
    }

    // The queue policy lets the fleet's own rules send, nobody else.
    let rules = resources_of_type(&fleet, "AWS::Events::Rule");
    let rule_arns: BTreeSet<String> = rules
        .iter()
        .map(|(name, _)| json!({"Fn::GetAtt": [name, "Arn"]}).to_string())
        .collect();
    let (_, queue_policy) = single_resource(&fleet, "AWS::SQS::QueuePolicy", WORKER_FLEET_TEMPLATE);
    for statement in as_list(&queue_policy["Properties"]["PolicyDocument"]["Statement"]) {
        if statement["Effect"] != "Allow" {
            continue;
        }
        let sources: BTreeSet<String> =
            as_list(&statement["Condition"]["ArnEquals"]["aws:SourceArn"])
                .iter()
                .map(Value::to_string)
                .collect();
        let scoped = statement["Principal"] == json!({"Service": "events.amazonaws.com"})
            && actions_of(&statement) == ["sqs:SendMessage"]
            && as_list(&statement["Resource"]) == [queue_arn.clone()]
            && !sources.is_empty()
            && sources.is_subset(&rule_arns);
        if !scoped {
            problems.push(format!(
                "the queue policy should allow only events.amazonaws.com to sqs:SendMessage to \
                 {queue_arn}, for the fleet's rules (aws:SourceArn): {statement}"
            ));
        }
    }

    // The rules put the action's STARTED events on the queue.
    let pattern = started_pattern(
        json!({"Ref": "ActionProvider"}),
        json!({"Ref": "ActionVersion"}),
    );
    let on_buses: BTreeSet<String> = rules
        .iter()
        .map(|(_, rule)| rule["Properties"]["EventBusName"].to_string())
        .collect();
    for (name, rule) in &rules {
        if rule["Properties"]["EventPattern"] != pattern {
            problems.push(format!(
                "{name} should match {pattern}, it matches {}",
                rule["Properties"]["EventPattern"]
            ));
        }
        let targets = as_list(&rule["Properties"]["Targets"]);
        if targets.len() != 1 || targets[0]["Arn"] != queue_arn {
            problems.push(format!(
                "{name} should target {queue_arn} only: {targets:?}"
            ));
        }
    }
    let (bus_name, _) = single_resource(&fleet, "AWS::Events::EventBus", WORKER_FLEET_TEMPLATE);
    if !on_buses.contains(&json!({"Ref": bus_name}).to_string()) || !on_buses.contains("null") {
        problems.push(format!(
            "one rule should read {bus_name} (member accounts) and one the default bus (this \
             account): {on_buses:?}"
        ));
    }

    // The bus accepts CodePipeline's events from the member accounts or the organisation only.
    for (name, policy) in resources_of_type(&fleet, "AWS::Events::EventBusPolicy") {
        let statement = &policy["Properties"]["Statement"];
        let condition = &statement["Condition"]["StringEquals"];
        let principal_ok = statement["Principal"] == json!({"AWS": {"Ref": "MemberAccountIds"}})
            || (statement["Principal"] == "*"
                && condition["aws:PrincipalOrgID"] == json!({"Ref": "OrganizationId"}));
        let scoped = principal_ok
            && actions_of(statement) == ["events:PutEvents"]
            && statement["Resource"] == json!({"Fn::GetAtt": [bus_name, "Arn"]})
            && condition["events:source"] == "aws.codepipeline";
        if !scoped {
            problems.push(format!(
                "{name} should let only MemberAccountIds (or the OrganizationId) put \
                 aws.codepipeline events on {bus_name}: {statement}"
            ));
        }
    }

    // The worker is told the queue and the sources, through variables it reads.
    let known = worker_environment_variables();
    let user_data = UserData::of_fleet(&fleet, &[]);
    let environment = super::key_values(&user_data.file(WORKER_ENV_FILE));
    if environment
        .get("PIPELINE_PUBLISHER_WAKE_QUEUE")
        .map(String::as_str)
        != Some(&format!("{queue_name}-ref"))
    {
        problems.push(format!(
            "{WORKER_ENV_FILE} should set PIPELINE_PUBLISHER_WAKE_QUEUE to the queue's URL (Ref \
             {queue_name})"
        ));
    }
    for variable in [
        "PIPELINE_PUBLISHER_WAKE_QUEUE",
        "PIPELINE_PUBLISHER_SOURCES",
    ] {
        if !known.contains(variable) {
            problems.push(format!(
                "`pipeline-publisher worker` does not read {variable}"
            ));
        }
    }
    if !user_data.script.contains("SOURCES='Sources-value'")
        && !user_data.script.contains("SOURCES=''")
        || !user_data.script.contains(
            "echo \"PIPELINE_PUBLISHER_SOURCES=$SOURCES\" >> /etc/pipeline-publisher/worker.env",
        )
    {
        problems.push(
            "the user data should add PIPELINE_PUBLISHER_SOURCES (the Sources parameter) to \
             worker.env when it is not empty"
                .to_owned(),
        );
    }
    assert_no_problems(
        &problems,
        &format!("the wake-up and member-account parts of {WORKER_FLEET_TEMPLATE}"),
    );
}
