import { Logger } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { loadConfig } from '../../config/app.config';
import type { MeasurementInput } from '../../domain/measurement';
import type { IngestionService } from '../ingestion.service';
import { SIMULATOR_INTERVAL, SimulatorService } from './simulator.service';

function setUp(env: Record<string, string>) {
  const sent: MeasurementInput[][] = [];
  const ingestion = {
    ingest: (batch: MeasurementInput[]) => {
      sent.push(batch);
      return Promise.resolve({ accepted: batch.length, message_ids: [] });
    },
  };
  const scheduler = new SchedulerRegistry();
  const simulator = new SimulatorService(
    ingestion as unknown as IngestionService,
    scheduler,
    loadConfig(env),
  );
  return { simulator, scheduler, sent };
}

describe('SimulatorService', () => {
  beforeAll(() => Logger.overrideLogger(false));
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('registers its interval with the SchedulerRegistry and sends SIMULATOR_RATE a second', async () => {
    const { simulator, scheduler, sent } = setUp({
      SIMULATOR_ENABLED: 'true',
      SIMULATOR_RATE: '50',
      SIMULATOR_CITIES: '3',
    });
    simulator.onApplicationBootstrap();
    expect(scheduler.getIntervals()).toEqual([SIMULATOR_INTERVAL]);
    jest.advanceTimersByTime(2000);
    expect(sent.flat()).toHaveLength(100);
    expect(new Set(sent.flat().map((m) => m.city_id)).size).toBe(3);

    await simulator.onModuleDestroy();
    expect(scheduler.getIntervals()).toEqual([]);
    jest.advanceTimersByTime(2000);
    expect(sent.flat()).toHaveLength(100);
  });

  it('schedules nothing when disabled, and stops cleanly', async () => {
    const { simulator, scheduler, sent } = setUp({ SIMULATOR_ENABLED: 'false' });
    simulator.onApplicationBootstrap();
    expect(scheduler.getIntervals()).toEqual([]);
    jest.advanceTimersByTime(2000);
    expect(sent).toEqual([]);
    await expect(simulator.onModuleDestroy()).resolves.toBeUndefined();
  });
});
