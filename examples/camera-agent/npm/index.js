'use strict';

// The camera agent's status report: what the fleet dashboard polls every minute.
const os = require('os');

const VERSION = require('./package.json').version;

function status(now = new Date()) {
  return {
    agent: '@nestbox/camera-agent',
    version: VERSION,
    host: os.hostname(),
    uptimeSeconds: Math.round(os.uptime()),
    reportedAt: now.toISOString(),
  };
}

module.exports = { status, VERSION };
