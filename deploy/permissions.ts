/**
 * What each AWS SDK command of the service needs from IAM. `deploy/speed-layer-stack.spec.ts` scans
 * `src/` for `new XxxCommand(` (and `kinesisDirectCall('Xxx'` or `dynamoDbDirectCall('Xxx'`, a
 * call sent without the SDK's command class, named as that class) and fails on a command missing
 * here, so every new SDK call gets a decided permission, and on an entry no longer called, so no
 * permission outlives its call.
 */

/** The resources a grant applies to; the stack turns them into ARNs. */
export type Target = 'stream' | 'tables' | 'dlqIndex';

export interface Grant {
  readonly actions: readonly string[];
  readonly on: readonly Target[];
}

/** The running service (BACKEND=aws, PROVISION_RESOURCES=false). */
export const SERVICE_COMMANDS: Readonly<Record<string, Grant>> = {
  PutRecordsCommand: { actions: ['kinesis:PutRecords'], on: ['stream'] },
  ListShardsCommand: { actions: ['kinesis:ListShards'], on: ['stream'] },
  GetShardIteratorCommand: { actions: ['kinesis:GetShardIterator'], on: ['stream'] },
  GetRecordsCommand: { actions: ['kinesis:GetRecords'], on: ['stream'] },
  DescribeStreamSummaryCommand: { actions: ['kinesis:DescribeStreamSummary'], on: ['stream'] },
  DescribeTableCommand: { actions: ['dynamodb:DescribeTable'], on: ['tables'] },
  GetCommand: { actions: ['dynamodb:GetItem'], on: ['tables'] },
  PutCommand: { actions: ['dynamodb:PutItem'], on: ['tables'] },
  UpdateCommand: { actions: ['dynamodb:UpdateItem'], on: ['tables'] },
  // The lease releases, sent directly (see src/infra/aws/direct-call.ts).
  UpdateItemCommand: { actions: ['dynamodb:UpdateItem'], on: ['tables'] },
  DeleteCommand: { actions: ['dynamodb:DeleteItem'], on: ['tables'] },
  // GET /dlq reads the by_failed_at index; the other queries read the tables.
  QueryCommand: { actions: ['dynamodb:Query'], on: ['tables', 'dlqIndex'] },
  ScanCommand: { actions: ['dynamodb:Scan'], on: ['tables'] },
  BatchGetCommand: { actions: ['dynamodb:BatchGetItem'], on: ['tables'] },
  BatchWriteItemCommand: { actions: ['dynamodb:BatchWriteItem'], on: ['tables'] },
  // The per-city latest items: conditional PartiQL UPDATEs, and INSERTs for cities not seen yet;
  // the lease renewals: conditional UPDATEs, 25 to a call.
  BatchExecuteStatementCommand: {
    actions: ['dynamodb:PartiQLInsert', 'dynamodb:PartiQLUpdate'],
    on: ['tables'],
  },
  // There is no dynamodb:TransactWriteItems action: each item is authorised as its own write.
  TransactWriteItemsCommand: {
    actions: [
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
      'dynamodb:DeleteItem',
      'dynamodb:ConditionCheckItem',
    ],
    on: ['tables'],
  },
};

/** `src/infra/embedded/resource-provisioner.ts`, run only with PROVISION_RESOURCES=true. */
export const PROVISIONING_COMMANDS: Readonly<Record<string, Grant>> = {
  CreateStreamCommand: { actions: ['kinesis:CreateStream'], on: ['stream'] },
  DescribeStreamSummaryCommand: { actions: ['kinesis:DescribeStreamSummary'], on: ['stream'] },
  CreateTableCommand: { actions: ['dynamodb:CreateTable'], on: ['tables'] },
  DescribeTableCommand: { actions: ['dynamodb:DescribeTable'], on: ['tables'] },
  DescribeTimeToLiveCommand: { actions: ['dynamodb:DescribeTimeToLive'], on: ['tables'] },
  UpdateTimeToLiveCommand: { actions: ['dynamodb:UpdateTimeToLive'], on: ['tables'] },
};

/** Every action of `commands`, sorted and without repeats; throws on a command without a grant. */
export function actionsFor(
  commands: Iterable<string>,
  table: Readonly<Record<string, Grant>>,
): string[] {
  const actions = new Set<string>();
  for (const command of commands) {
    const grant = table[command];
    if (!grant) throw new Error(`no IAM decision for ${command}: add it to deploy/permissions.ts`);
    grant.actions.forEach((a) => actions.add(a));
  }
  return [...actions].sort();
}

/** The grants of `table` merged into one action list per target set, for one IAM statement each. */
export function statementsFor(
  table: Readonly<Record<string, Grant>>,
): { actions: string[]; on: Target[] }[] {
  const byTarget = new Map<Target, Set<string>>();
  for (const grant of Object.values(table)) {
    for (const target of grant.on) {
      const actions = byTarget.get(target) ?? new Set<string>();
      grant.actions.forEach((a) => actions.add(a));
      byTarget.set(target, actions);
    }
  }
  const byActions = new Map<string, { actions: string[]; on: Target[] }>();
  for (const [target, actions] of byTarget) {
    const sorted = [...actions].sort();
    const key = sorted.join(',');
    const statement = byActions.get(key) ?? { actions: sorted, on: [] };
    statement.on.push(target);
    byActions.set(key, statement);
  }
  return [...byActions.values()];
}
