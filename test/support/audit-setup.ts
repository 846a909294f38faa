import { audit, auditFetch } from './response-audit';

// Every response of this test file is checked against the OpenAPI document of its sender.
auditFetch();

afterAll(async () => {
  await audit.settle();
  expect(audit.violations).toEqual([]);
});
