#!/usr/bin/env node
'use strict';

const { status } = require('../index.js');

process.stdout.write(JSON.stringify(status()) + '\n');
