/**
 * The page's one client of the coordinator's HTTP routes (docs/protocol.md, "HTTP routes").
 * Every answer is checked against its schema in protocol/ before the page uses it, every body
 * sent is typed by the schema the coordinator validates it with (protocol/page-requests.ts),
 * and every refusal, unreachable coordinator or malformed answer becomes one
 * {@link CoordinatorError}.
 */
import * as v from 'valibot';
import {
  ControlAnswer,
  EarningsSummary,
  Enrollment,
  FleetView,
  IssuedToken,
  PriceListView,
  ProblemBody,
  ProofPayload,
  ReceiptsAnswer,
  RevokedToken,
  TokenList,
  VerificationReport,
  WalletSession,
} from '../protocol/answers.ts';
import { NetworkInfo } from '../protocol/network.ts';
import type {
  ControlRequest,
  EnrollRequest,
  IssueTokenRequest,
  WalletPayloadRequest,
  WalletProofRequest,
} from '../protocol/page-requests.ts';
import { t } from './i18n/index.ts';

/**
 * A request the coordinator refused or could not answer. `reason`: the coordinator's own
 * (`token-expired`, `signature-invalid`, ...) where it gives one, else `http-<status>`;
 * `unreachable` when no answer came; `malformed-answer` when the answer is not what
 * docs/protocol.md says.
 */
export class CoordinatorError extends Error {
  override readonly name = 'CoordinatorError';
  constructor(
    readonly reason: string,
    message: string,
    /** The HTTP status; null when no answer came. */
    readonly status: number | null,
  ) {
    super(message);
  }
}

interface Call {
  method?: 'GET' | 'POST' | 'DELETE';
  body?: unknown;
  /** A wallet session (or monitor token) sent as `Authorization: Bearer`. */
  bearer?: string;
}

export class CoordinatorClient {
  readonly #base: string;
  readonly #fetch: typeof fetch;

  /** `baseUrl`: the coordinator's origin (and path prefix, if any), without `/v1`. */
  constructor(baseUrl: string, doFetch: typeof fetch = (input, init) => fetch(input, init)) {
    this.#base = baseUrl.replace(/\/+$/, '');
    this.#fetch = doFetch;
  }

  /** `GET /v1/prices`. */
  prices(): Promise<PriceListView> {
    return this.#call(PriceListView, '/prices');
  }

  /** `GET /v1/network`. */
  network(): Promise<NetworkInfo> {
    return this.#call(NetworkInfo, '/network');
  }

  /** `GET /v1/earnings/:wallet`. */
  earnings(wallet: string): Promise<EarningsSummary> {
    return this.#call(EarningsSummary, `/earnings/${encodeURIComponent(wallet)}`);
  }

  /** `GET /v1/contributors/:id/receipts?limit=`. */
  receipts(contributorId: string, limit = 50): Promise<ReceiptsAnswer> {
    return this.#call(ReceiptsAnswer, `/contributors/${encodeURIComponent(contributorId)}/receipts?limit=${limit}`);
  }

  /** `GET /v1/contributors/:id/verification`. */
  verification(contributorId: string): Promise<VerificationReport> {
    return this.#call(VerificationReport, `/contributors/${encodeURIComponent(contributorId)}/verification`);
  }

  /** `POST /v1/wallet/payload`: a `ton_proof` payload bound to this device's key. */
  walletPayload(deviceKey: string): Promise<ProofPayload> {
    const body: WalletPayloadRequest = { deviceKey };
    return this.#call(ProofPayload, '/wallet/payload', { method: 'POST', body });
  }

  /** `POST /v1/wallet/proof`: the wallet session of a proven wallet. */
  walletProof(request: WalletProofRequest): Promise<WalletSession> {
    return this.#call(WalletSession, '/wallet/proof', { method: 'POST', body: request });
  }

  /** `POST /v1/enroll`: a kiosk machine enrolls with its owner's token. */
  enroll(request: EnrollRequest): Promise<Enrollment> {
    return this.#call(Enrollment, '/enroll', { method: 'POST', body: request });
  }

  /** `DELETE /v1/owner/session`: signs the fleet page's owner session out (the token then works nowhere). */
  signOutOwner(session: string): Promise<{ signedOut: boolean }> {
    return this.#call(v.object({ signedOut: v.boolean() }), '/owner/session', { method: 'DELETE', bearer: session });
  }

  /** `GET /v1/fleet`, as the owner (wallet session) or with a `monitor` token. */
  fleet(session: string): Promise<FleetView> {
    return this.#call(FleetView, '/fleet', { bearer: session });
  }

  /** `POST /v1/fleet/:contributorId/control`. */
  control(session: string, contributorId: string, request: ControlRequest): Promise<ControlAnswer> {
    return this.#call(ControlAnswer, `/fleet/${encodeURIComponent(contributorId)}/control`, {
      method: 'POST',
      body: request,
      bearer: session,
    });
  }

  /** `GET /v1/enrollment-tokens`. */
  enrollmentTokens(session: string): Promise<TokenList> {
    return this.#call(TokenList, '/enrollment-tokens', { bearer: session });
  }

  /** `POST /v1/enrollment-tokens`. */
  issueEnrollmentToken(session: string, request: IssueTokenRequest): Promise<IssuedToken> {
    return this.#call(IssuedToken, '/enrollment-tokens', { method: 'POST', body: request, bearer: session });
  }

  /** `DELETE /v1/enrollment-tokens/:id`. */
  revokeEnrollmentToken(session: string, id: string): Promise<RevokedToken> {
    return this.#call(RevokedToken, `/enrollment-tokens/${encodeURIComponent(id)}`, { method: 'DELETE', bearer: session });
  }

  async #call<T>(schema: v.GenericSchema<unknown, T>, path: string, call: Call = {}): Promise<T> {
    const headers: Record<string, string> = {};
    if (call.body !== undefined) headers['content-type'] = 'application/json';
    if (call.bearer !== undefined) headers['authorization'] = `Bearer ${call.bearer}`;
    const init: RequestInit = { method: call.method ?? 'GET', headers, cache: 'no-store' };
    if (call.body !== undefined) init.body = JSON.stringify(call.body);
    let response: Response;
    try {
      response = await this.#fetch(new URL(`${this.#base}/v1${path}`), init);
    } catch (err) {
      throw new CoordinatorError('unreachable', err instanceof Error ? err.message : String(err), null);
    }
    const data: unknown = await response.json().catch(() => undefined);
    if (!response.ok) {
      const problem = v.safeParse(ProblemBody, data);
      const error = problem.success ? problem.output.error : undefined;
      throw new CoordinatorError(
        error?.reason ?? `http-${response.status}`,
        error?.message ?? t('wallet.httpError', { status: response.status }),
        response.status,
      );
    }
    const answer = v.safeParse(schema, data);
    if (!answer.success) {
      throw new CoordinatorError(
        'malformed-answer',
        `The coordinator's answer to ${call.method ?? 'GET'} /v1${path} is malformed: ${v.summarize(answer.issues).slice(0, 300)}`,
        response.status,
      );
    }
    return answer.output;
  }
}
