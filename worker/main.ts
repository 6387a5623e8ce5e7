/// <reference lib="webworker" />
import { expose } from 'comlink';
import { installErrorTransfer } from '../protocol/comlink-errors.ts';
import { createWorkerApi } from './api.ts';
import { createRuntime } from './setup.ts';

installErrorTransfer();
expose(createWorkerApi(createRuntime));
