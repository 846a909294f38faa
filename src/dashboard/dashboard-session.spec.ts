import { DashboardSessions, SESSION_TTL_MS } from './dashboard-session';

describe('DashboardSessions', () => {
  let now = 1_000_000;
  const clock = () => now;

  it('accepts its own token until it expires', () => {
    const sessions = new DashboardSessions(['a', 'b'], clock);
    const { token, expiresAt } = sessions.issue();
    expect(expiresAt).toBe(now + SESSION_TTL_MS);
    expect(sessions.verify(token)).toBe(expiresAt);
    now += SESSION_TTL_MS;
    expect(sessions.verify(token)).toBeUndefined();
  });

  it('is shared by instances with the same keys, in any order, and ends when keys change', () => {
    const { token } = new DashboardSessions(['a', 'b'], clock).issue();
    expect(new DashboardSessions(['b', 'a'], clock).verify(token)).toBeDefined();
    expect(new DashboardSessions(['a', 'c'], clock).verify(token)).toBeUndefined();
  });

  it('refuses tampered, truncated and foreign tokens', () => {
    const sessions = new DashboardSessions(['a'], clock);
    const { token } = sessions.issue();
    const [payload, tag] = token.split('.');
    const later = Buffer.from(JSON.stringify({ exp: now + 10 * SESSION_TTL_MS })).toString(
      'base64url',
    );
    for (const bad of [
      undefined,
      '',
      payload,
      `${later}.${tag}`,
      `${payload}.${tag}x`,
      `${payload}.${tag}.x`,
      'x'.repeat(600),
    ])
      expect(sessions.verify(bad)).toBeUndefined();
  });

  it('reads its cookie among others and writes it HttpOnly and SameSite=Strict', () => {
    expect(DashboardSessions.fromCookieHeader('a=1; aq_dashboard=t.k; b=2')).toBe('t.k');
    expect(DashboardSessions.fromCookieHeader('aq_dashboardx=1')).toBeUndefined();
    expect(DashboardSessions.fromCookieHeader(undefined)).toBeUndefined();
    const cookie = DashboardSessions.cookie('t.k', 61_000, true, 1000);
    expect(cookie).toBe('aq_dashboard=t.k; Path=/; Max-Age=60; HttpOnly; SameSite=Strict; Secure');
  });
});
