"""Baseline for scenario 1: a job worker written the way the well-known Python sample is.

It polls one job at a time, reads the whole input artifact into memory
(`get_object()["Body"].read()`), opens the zip from memory, reads each entry into memory,
hashes it, and PUTs the bytes with basic auth and the three checksum headers. No temp files,
no streaming, no checksum deploy. After its jobs it prints its peak RSS and waits (at most
60 s) for the harness to read /proc and stop it.

Environment: the standard AWS variables (credentials, region, AWS_ENDPOINT_URL_CODEPIPELINE,
AWS_ENDPOINT_URL_S3); SAMPLE_MAX_JOBS (default 1); SAMPLE_POLL_SECONDS (default 10).
"""

import base64
import hashlib
import io
import os
import sys
import time
import urllib.parse
import urllib.request
import zipfile

import boto3
from botocore.config import Config

ACTION_TYPE = {"category": "Deploy", "owner": "Custom", "provider": "Artifactory", "version": "1"}
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def publish(job):
    data = job["data"]
    configuration = data["actionConfiguration"]["configuration"]
    credentials = data["artifactCredentials"]
    s3 = boto3.client(
        "s3",
        aws_access_key_id=credentials["accessKeyId"],
        aws_secret_access_key=credentials["secretAccessKey"],
        aws_session_token=credentials["sessionToken"],
        config=Config(s3={"addressing_style": "path"}),
    )
    host = configuration["ArtifactoryHost"].rstrip("/")
    repo = configuration["RepoKey"]
    target = configuration["TargetPath"]
    login = f'{configuration["UserName"]}:{configuration["Password"]}'
    authorization = "Basic " + base64.b64encode(login.encode()).decode()
    for artifact in data["inputArtifacts"]:
        location = artifact["location"]["s3Location"]
        body = s3.get_object(Bucket=location["bucketName"], Key=location["objectKey"])["Body"].read()
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            for entry in archive.infolist():
                if entry.is_dir():
                    continue
                content = archive.read(entry)
                url = f"{host}/artifactory/{repo}/{target}/{urllib.parse.quote(entry.filename)}"
                request = urllib.request.Request(
                    url,
                    data=content,
                    method="PUT",
                    headers={
                        "Authorization": authorization,
                        "Content-Type": "application/octet-stream",
                        "X-Checksum-Sha256": hashlib.sha256(content).hexdigest(),
                        "X-Checksum-Sha1": hashlib.sha1(content).hexdigest(),
                        "X-Checksum-Md5": hashlib.md5(content).hexdigest(),
                    },
                )
                with OPENER.open(request) as response:
                    response.read()


def main():
    codepipeline = boto3.client("codepipeline")
    max_jobs = int(os.environ.get("SAMPLE_MAX_JOBS", "1"))
    poll_seconds = float(os.environ.get("SAMPLE_POLL_SECONDS", "10"))
    done = 0
    deadline = time.monotonic() + 900
    while done < max_jobs and time.monotonic() < deadline:
        jobs = codepipeline.poll_for_jobs(actionTypeId=ACTION_TYPE, maxBatchSize=1)["jobs"]
        if not jobs:
            time.sleep(poll_seconds)
            continue
        job = jobs[0]
        codepipeline.acknowledge_job(jobId=job["id"], nonce=job["nonce"])
        try:
            publish(job)
            codepipeline.put_job_success_result(
                jobId=job["id"], executionDetails={"summary": "published"}
            )
        except Exception as error:  # the sample reports every failure as JobFailed
            codepipeline.put_job_failure_result(
                jobId=job["id"], failureDetails={"type": "JobFailed", "message": str(error)[:5000]}
            )
        done += 1
    with open("/proc/self/status") as status:
        peak = next(line for line in status if line.startswith("VmHWM"))
    print(peak.strip(), file=sys.stderr, flush=True)
    time.sleep(60)


if __name__ == "__main__":
    main()
