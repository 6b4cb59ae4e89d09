/**
 * How long the bot may take to stop after SIGTERM or SIGINT. It stops taking requests, lets running
 * jobs finish and exits; past this limit it exits anyway, and the jobs it still held are taken over by
 * another replica once their locks run out. An orchestrator must wait longer before it kills the
 * process (Kubernetes `terminationGracePeriodSeconds`, compose `stop_grace_period`).
 */
export const STOP_LIMIT_MS = 20_000;
