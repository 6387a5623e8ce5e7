/// <reference lib="webworker" />
import { expose } from 'comlink';
import { installErrorTransfer } from '../protocol/comlink-errors.ts';
import { WorkerApi } from './api.ts';
import { createRuntime } from './setup.ts';

installErrorTransfer();
expose(new WorkerApi(createRuntime));
