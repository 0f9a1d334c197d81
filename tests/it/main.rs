//! Integration tests: real HTTP servers on 127.0.0.1 (the mock registry, the AWS stand-ins,
//! scripted peers) and the real binary, linked once as one test binary.

mod architecture;
mod auth_standins;
mod bad_inputs;
mod cli_commands;
mod cli_help;
mod cli_worker_observability;
mod competing_workers;
mod demo_output;
mod fleet_loop;
mod fleet_worker;
mod formats_mock;
mod formats_wire;
mod metrics_exposition;
mod multipart_deploys;
mod overlapped_extraction;
mod passwordless;
mod passwordless_cli;
mod passwordless_hygiene;
mod passwordless_secrets;
mod plan_failures;
mod property_tests;
mod ranged_downloads;
mod registry_connection_faults;
mod registry_faults;
mod registry_tls;
mod secrets_in_outputs;
mod secrets_stay_secret;
mod support;
mod token_expiry;
mod trace_capture;
mod upload_concurrency;
mod worker_binary;
mod worker_crash_recovery;
mod worker_end_to_end;
mod worker_loop;
