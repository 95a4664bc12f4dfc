"""One vLLM V1 server, as its scheduler serves requests: the replica model of the simulator.

Role: admit, prefill, decode, preempt and finish the requests routed to one pod, and keep the
counters vLLM exports (waiting, running, KV-cache usage, token counters, TTFT and ITL
histograms). Callers: ``fleetscale.sim.engine`` (a fleet of these behind a load balancer) and
``fleetscale.sim.validation`` (one replica under a closed-loop benchmark).

Semantics (vllm/v1/core/sched/scheduler.py, read for behaviour only):
- Every step schedules the running requests first: each decoding request one token, each
  request still prefilling its next chunk, all within ``max_num_batched_tokens``; the rest of
  the budget admits waiting requests (preempted ones first, then new arrivals, FCFS) while the
  sequence cap, the budget and free KV blocks allow. A request's chunk needs its blocks before
  it is scheduled; when none are free, admission stops.
- A decode that needs a new block when none is free preempts the last admitted request: its
  blocks are freed and it goes back to the head of the waiting queue, to recompute its prompt
  and the tokens it had generated (counted in ``waiting`` meanwhile).
- The step that completes a prompt samples the request's next token (the first token: TTFT).
- Prefix caching: a request's leading prompt blocks found in the replica's cache (the trace's
  ``hash_ids``) count as computed; the cache holds as many blocks as the KV cache, LRU.

How time advances (the reason an hour of a 64-replica fleet runs in seconds):
- A step that carries prefill is simulated one at a time; one such step processes up to 8,192
  prompt tokens, so there are about as many of them as requests.
- Between such steps, the batch is pure decode and its composition is fixed until the next
  request finishes, the KV cache runs out, or the caller's horizon: that stretch of K steps is
  advanced in one go. Step k takes ``a + slope * k`` (the KV cache read grows by one token per
  sequence per step), so K steps take ``K a + slope K (K - 1) / 2``, solved for K in closed
  form. Decoding requests share a clock of steps, so a stretch costs O(1), not O(batch).
- KV blocks are counted as a fluid: cached tokens over the block size plus half a block per
  running request for the partly filled last block. The error is below one block per request.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from fleetscale.sim.model import ModelProfile

# vLLM's bucket bounds (vllm/v1/metrics/loggers.py), in seconds; +Inf is implicit.
TTFT_BUCKETS_SECONDS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
    10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
ITL_BUCKETS_SECONDS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0,
)  # fmt: skip

NOT_YET = math.inf


@dataclass
class HistogramCounts:
    """A Prometheus histogram's raw state: observations per bucket (not cumulative)."""

    bounds_seconds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    sum_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds_seconds) + 1)

    def observe(self, seconds: float, times: int = 1) -> None:
        self.counts[bisect.bisect_left(self.bounds_seconds, seconds)] += times
        self.sum_seconds += seconds * times

    def observe_ramp(self, first: float, slope: float, steps: int, times: int) -> None:
        """``times`` observations of each of ``steps`` durations ``first + slope * k``."""
        if steps <= 0 or times <= 0:
            return
        bounds = self.bounds_seconds
        last = first + slope * (steps - 1)
        self.sum_seconds += times * steps * (first + last) / 2
        low = bisect.bisect_left(bounds, first)
        high = bisect.bisect_left(bounds, last)
        if low == high or slope <= 0:
            self.counts[low] += steps * times
            return
        counted = 0
        for index in range(low, high):
            # Steps k with first + slope * k <= bound.
            upto = min(steps, math.floor((bounds[index] - first) / slope) + 1)
            self.counts[index] += (upto - counted) * times
            counted = upto
        self.counts[high] += (steps - counted) * times

    def add(self, other: HistogramCounts) -> None:
        for index, count in enumerate(other.counts):
            self.counts[index] += count
        self.sum_seconds += other.sum_seconds


class RequestBook:
    """Every request of a run: its shape and what happened to it, shared by all replicas.

    Parallel lists indexed by request id keep a million requests cheap to hold.
    """

    def __init__(
        self,
        arrival_seconds: Sequence[float],
        input_tokens: Sequence[int],
        output_tokens: Sequence[int],
        prefix_hashes: Sequence[tuple[int, ...]] | None = None,
        prefix_block_tokens: int = 0,
    ) -> None:
        count = len(arrival_seconds)
        self.arrival = arrival_seconds
        self.prompt = input_tokens
        self.output = output_tokens
        self.prefix_hashes = prefix_hashes
        self.prefix_block_tokens = prefix_block_tokens
        self.target = list(input_tokens)  # tokens to prefill (prompt, or more after preemption)
        self.computed = [0] * count
        self.generated = [0] * count  # materialized while not decoding
        self.offset = [0] * count  # decoding: generated = replica clock - offset
        self.admitted_at = [NOT_YET] * count  # first scheduled (vLLM's queue time ends)
        self.first_token_at = [NOT_YET] * count
        self.finished_at = [NOT_YET] * count
        self.timed_out = [False] * count
        self.timeout_seconds = math.inf


class Replica:
    """The scheduler and the KV cache of one vLLM V1 server."""

    def __init__(self, profile: ModelProfile, book: RequestBook, now: float = 0.0) -> None:
        self.profile = profile
        self.book = book
        self.now = now  # local time: the end of the last simulated step (may pass a horizon)
        self.waiting: deque[int] = deque()  # new arrivals, FCFS
        self.preempted: deque[int] = deque()  # ahead of ``waiting``
        self.running: list[int] = []  # admission order (preemption takes the last)
        self.prefilling: list[int] = []  # running requests whose prompt is not computed yet
        self.finish_heap: list[tuple[int, int]] = []  # (clock mark, request)
        self.decoding: set[int] = set()
        self.clock = 0  # decode steps taken; a decoding request's tokens follow it
        self.kv_tokens = 0.0  # tokens held in the KV cache by running requests
        self.total_blocks = profile.num_gpu_blocks
        self.block_tokens = profile.block_size
        self.token_room = float(self.total_blocks * self.block_tokens)
        self.prefix_cache: OrderedDict[int, None] | None = None
        if book.prefix_hashes is not None and book.prefix_block_tokens > 0:
            self.prefix_cache = OrderedDict()
            self.prefix_capacity = profile.kv_cache_tokens // book.prefix_block_tokens
        # Counters, as vLLM exports them (cumulative).
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self.preemptions_total = 0
        self.prefix_hit_tokens_total = 0
        self.busy_seconds = 0.0
        self.ttft = HistogramCounts(TTFT_BUCKETS_SECONDS)
        self.itl = HistogramCounts(ITL_BUCKETS_SECONDS)
        self.finished: list[int] = []  # finished since the owner last collected them
        self.timed_out_count = 0

    # -- what the server exports -------------------------------------------------------------

    @property
    def num_waiting(self) -> int:
        """``vllm:num_requests_waiting``: new arrivals and preempted requests."""
        return len(self.waiting) + len(self.preempted)

    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def outstanding(self) -> int:
        """What a least-requests load balancer counts: every request the pod holds."""
        return len(self.waiting) + len(self.preempted) + len(self.running)

    @property
    def used_blocks(self) -> float:
        return min(
            float(self.total_blocks),
            self.kv_tokens / self.block_tokens + 0.5 * len(self.running),
        )

    @property
    def kv_cache_usage(self) -> float:
        """``vllm:kv_cache_usage_perc``: used blocks over all blocks, a fraction."""
        return self.used_blocks / self.total_blocks

    @property
    def idle(self) -> bool:
        return not (self.running or self.waiting or self.preempted)

    # -- requests in -------------------------------------------------------------------------

    def enqueue(self, request: int) -> None:
        self.waiting.append(request)

    def expire_waiting(self, now: float) -> int:
        """Drop new arrivals whose client gave up waiting for a first token; how many."""
        book = self.book
        deadline = now - book.timeout_seconds
        waiting = self.waiting
        dropped = 0
        while waiting and book.arrival[waiting[0]] <= deadline:
            request = waiting.popleft()
            book.timed_out[request] = True
            dropped += 1
        self.timed_out_count += dropped
        return dropped

    def take_all_waiting(self) -> list[int]:
        """Hand back requests not yet admitted (for a pod that goes away)."""
        taken = list(self.preempted) + list(self.waiting)
        self.preempted.clear()
        self.waiting.clear()
        return taken

    # -- the scheduler -----------------------------------------------------------------------

    def advance_to(self, horizon: float) -> None:
        """Run scheduler steps until the local time reaches ``horizon`` (the last step may end
        after it: a step in flight is never cut)."""
        while self.now < horizon:
            if self.idle:
                self.now = horizon
                return
            if self._can_schedule_prefill():
                self._prefill_step()
            elif self.decoding:
                self._decode_stretch(horizon)
            elif self.running:
                # Only prefilling requests, all blocked on memory: free room by preemption.
                self._preempt_last()
            else:
                # Waiting requests that cannot be admitted into an empty server (a prompt
                # larger than the KV cache): vLLM rejects them; count them as timed out.
                self._reject_head()

    def _head(self) -> int | None:
        """The next request to admit, dropping clients that gave up on the way."""
        book = self.book
        if self.preempted:
            return self.preempted[0]
        deadline = self.now - book.timeout_seconds
        while self.waiting:
            request = self.waiting[0]
            if book.arrival[request] > deadline:
                return request
            self.waiting.popleft()
            book.timed_out[request] = True
            self.timed_out_count += 1
        return None

    def _free_token_room(self) -> float:
        """Tokens that still fit in free blocks (fluid: half a block per running request)."""
        return self.token_room - 0.5 * self.block_tokens * len(self.running) - self.kv_tokens

    def _can_schedule_prefill(self) -> bool:
        room = self._free_token_room() - len(self.decoding)
        budget = self.profile.max_num_batched_tokens - len(self.decoding)
        if budget <= 0:
            return False
        book = self.book
        for request in self.prefilling:
            chunk = min(book.target[request] - book.computed[request], budget)
            return chunk <= room
        if len(self.running) >= self.profile.max_num_seqs:
            return False
        head = self._head()
        if head is None:
            return False
        chunk = min(book.target[head] - book.computed[head], budget)
        return chunk + 0.5 * self.block_tokens <= room

    def _prefix_hit(self, request: int) -> int:
        """Leading prompt tokens of ``request`` found in the prefix cache."""
        cache = self.prefix_cache
        hashes = self.book.prefix_hashes
        if cache is None or hashes is None:
            return 0
        matched = 0
        for block in hashes[request]:
            if block not in cache:
                break
            matched += 1
        return min(matched * self.book.prefix_block_tokens, self.book.prompt[request] - 1)

    def _cache_prefix(self, request: int) -> None:
        """An admitted request's prompt blocks enter the cache (most recently used)."""
        cache = self.prefix_cache
        hashes = self.book.prefix_hashes
        if cache is None or hashes is None:
            return
        for block in hashes[request]:
            cache[block] = None
            cache.move_to_end(block)
        while len(cache) > self.prefix_capacity:
            cache.popitem(last=False)

    def _prefill_step(self) -> None:
        profile = self.profile
        book = self.book
        decoders = len(self.decoding)
        budget = profile.max_num_batched_tokens - decoders
        room = self._free_token_room() - decoders
        scheduled = decoders
        pairs = 0.0
        completing: list[int] = []
        for request in self.prefilling:
            if budget <= 0:
                break
            computed = book.computed[request]
            chunk = min(book.target[request] - computed, budget)
            if chunk > room:
                break
            pairs += chunk * (computed + chunk / 2)
            book.computed[request] = computed + chunk
            budget -= chunk
            room -= chunk
            scheduled += chunk
            self.kv_tokens += chunk
            if computed + chunk >= book.target[request]:
                completing.append(request)
        max_seqs = profile.max_num_seqs
        half_block = 0.5 * self.block_tokens
        while budget > 0 and len(self.running) < max_seqs:
            head = self._head()
            if head is None:
                break
            request = head
            computed = book.computed[request]
            hit = 0
            if computed == 0 and self.prefix_cache is not None:
                hit = self._prefix_hit(request)
            chunk = min(book.target[request] - computed - hit, budget)
            if chunk + hit + half_block > room:
                break
            if self.preempted and self.preempted[0] == request:
                self.preempted.popleft()
            else:
                self.waiting.popleft()
            if book.admitted_at[request] == NOT_YET:
                book.admitted_at[request] = self.now
            self.running.append(request)
            if self.prefix_cache is not None:
                self._cache_prefix(request)
            if hit:
                self.prefix_hit_tokens_total += hit
                self.kv_tokens += hit
                room -= hit
                computed += hit
            pairs += chunk * (computed + chunk / 2)
            book.computed[request] = computed + chunk
            budget -= chunk
            room -= chunk + half_block
            scheduled += chunk
            self.kv_tokens += chunk
            if computed + chunk >= book.target[request]:
                completing.append(request)
            else:
                self.prefilling.append(request)
        duration = profile.step_seconds(scheduled, self.kv_tokens, pairs)
        self.now += duration
        self.busy_seconds += duration
        if decoders:
            self.clock += 1
            self.kv_tokens += decoders
            self.generation_tokens_total += decoders
            self.itl.observe(duration, decoders)
        if completing:
            done = set(completing)
            self.prefilling = [r for r in self.prefilling if r not in done]
            for request in completing:
                self._start_decoding(request)
        self._finish_due()

    def _start_decoding(self, request: int) -> None:
        """The step that completed the prompt sampled the next token."""
        book = self.book
        generated = book.target[request] - book.prompt[request] + 1
        self.kv_tokens += 1
        self.generation_tokens_total += 1
        if book.first_token_at[request] == NOT_YET:
            book.first_token_at[request] = self.now
            self.ttft.observe(self.now - book.arrival[request])
            self.prompt_tokens_total += book.prompt[request]
        if generated >= book.output[request]:
            book.generated[request] = generated
            self._finish(request)
            return
        book.offset[request] = self.clock - generated
        self.decoding.add(request)
        heapq.heappush(self.finish_heap, (book.offset[request] + book.output[request], request))

    def _current(self, mark: int, request: int) -> bool:
        """A heap entry still stands: the request decodes, and was not preempted since."""
        book = self.book
        return request in self.decoding and book.offset[request] + book.output[request] == mark

    def _finish_due(self) -> None:
        heap = self.finish_heap
        clock = self.clock
        while heap and heap[0][0] <= clock:
            mark, request = heapq.heappop(heap)
            if self._current(mark, request):
                self.decoding.discard(request)
                self.book.generated[request] = self.book.output[request]
                self._finish(request)

    def _finish(self, request: int) -> None:
        book = self.book
        self.kv_tokens -= book.prompt[request] + book.generated[request]
        self.running.remove(request)
        book.finished_at[request] = self.now
        self.finished.append(request)

    def _decode_stretch(self, horizon: float) -> None:
        profile = self.profile
        decoders = len(self.decoding)
        room = self._free_token_room()
        if room < decoders:
            self._preempt_last()
            return
        steps_until_full = int(room // decoders)
        while self.finish_heap and not self._current(*self.finish_heap[0]):
            heapq.heappop(self.finish_heap)
        steps_until_finish = self.finish_heap[0][0] - self.clock
        memory = (profile.weight_bytes + self.kv_tokens * profile.kv_bytes_per_token) / (
            profile.memory_bytes_per_second
        )
        compute = decoders * profile.flops_per_token / profile.flops_per_second
        if memory >= compute:
            first = profile.step_overhead_seconds + memory
            slope = decoders * profile.kv_bytes_per_token / profile.memory_bytes_per_second
        else:
            first = profile.step_overhead_seconds + compute
            slope = 0.0
        gap = horizon - self.now
        if slope > 0:
            # Smallest K with K first + slope K (K - 1) / 2 >= gap.
            half = slope / 2
            b = first - half
            steps_until_horizon = math.ceil((-b + math.sqrt(b * b + 4 * half * gap)) / (2 * half))
        else:
            steps_until_horizon = math.ceil(gap / first)
        steps = max(1, min(steps_until_finish, steps_until_full, steps_until_horizon))
        duration = steps * first + slope * steps * (steps - 1) / 2
        self.now += duration
        self.busy_seconds += duration
        self.clock += steps
        self.kv_tokens += decoders * steps
        self.generation_tokens_total += decoders * steps
        self.itl.observe_ramp(first, slope, steps, decoders)
        self._finish_due()

    def _preempt_last(self) -> None:
        """Free the last admitted request's blocks; it goes back to the head of waiting."""
        book = self.book
        request = self.running.pop()
        if request in self.decoding:
            self.decoding.discard(request)
            generated = self.clock - book.offset[request]
            book.generated[request] = generated
            self.kv_tokens -= book.prompt[request] + generated
            book.target[request] = book.prompt[request] + generated
        else:
            self.prefilling.remove(request)
            self.kv_tokens -= book.computed[request]
        book.computed[request] = 0
        self.preempted.appendleft(request)
        self.preemptions_total += 1

    def _reject_head(self) -> None:
        request = self.preempted.popleft() if self.preempted else self.waiting.popleft()
        self.book.timed_out[request] = True
        self.timed_out_count += 1
