import nock from 'nock';
import { afterEach, beforeEach } from 'vitest';

/**
 * For every test of the file that calls it: no HTTP request leaves the process but those nock fakes, and
 * the fakes a test registered are gone after it.
 */
export function onlyNockedHttp(): void {
  beforeEach(() => {
    nock.cleanAll();
    nock.disableNetConnect();
  });
  afterEach(() => {
    nock.cleanAll();
    nock.enableNetConnect();
  });
}
