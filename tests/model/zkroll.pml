/*
 * zkroll's pause / registration / resume protocol, as the code implements it
 * (common/registry.cc, agent/agent.cc, agent/pause_watcher.cc,
 * coordinator/deploy.cc, coordinator/maintenance.cc, coordinator/inventory.cc,
 * coordinator/lock.cc). docs/design.md, "The protocol as the model states
 * it", explains the steps, the invariants and why each abstraction is sound.
 *
 * One service, one instance. Processes:
 *   zookeeper  the leader's own transactions (session expiry), the follower
 *              catching up, the clock (a manual pause's TTL), COMMAND ending,
 *              coordinator SIGKILL, and the coordinators' clients learning
 *              that their session is gone.
 *   agent      health, its view of the pause flags, the guarded
 *              registration and the learning of one whose reply was lost,
 *              the exists-watch on its registration (F3).
 *   coord(A), coord(B)
 *              a deploy each: lock, pause, (drain), verify, COMMAND, resume.
 *   operator   `zkroll pause --ttl`, `zkroll resume`, `zkroll status`.
 *   monitor    safety invariants that must hold in every state.
 *   rest       what must hold whenever the system comes to rest.
 *
 * Every fix (issue 18's F1 to F4, and the ones the model found since) is a
 * switch (spin -a -DFIX_x=0 turns it off):
 *   FIX_RESUME_SESSION  F1a: a deploy deletes its flag only on the session
 *                       that created it; a retry on a new session does not.
 *   FIX_RESUME_GUARD    F1a: that delete is a multi {check /pause/<svc> at
 *                       the version read with the flag; delete the flag},
 *                       and every attempt reads the guard and the flag
 *                       again, so a retry after a lost reply cannot take a
 *                       flag made in between (off: the plain delete is
 *                       resent). FIX_RESUME sets both.
 *   FIX_ADOPT           F1b: the read-back after a session change adopts a
 *                       flag only if its payload (deploy id, pid) is ours.
 *   FIX_GUARD           F1c: every delete of a flag someone else made (the
 *                       expired-flag sweep, a deploy removing an expired
 *                       manual flag, `zkroll resume`) is that guarded multi;
 *                       `zkroll status` deletes nothing.
 *   FIX_SYNC            F2: the verify before COMMAND syncs first.
 *   FIX_WATCH           F3: the agent's exists-watch on its registration.
 *   FIX_FENCE           F4: the coordinator kills COMMAND once it learns its
 *                       session is lost; the verify also re-checks the lock.
 *   FIX_LEARN           the agent marks a registration whose reply was lost
 *                       as of unknown outcome and, before deciding anything
 *                       else for the instance, syncs and reads the node:
 *                       owned by its session means registered, otherwise
 *                       not (Registration::Learn). LEARN_SYNC=0 reads
 *                       without the sync.
 * RESYNC=1 adds the agent's slow periodic resync (off: the liveness
 * invariant is "registered without the resync"). AGENT_FOLLOWER=1 connects
 * the agent to a second lagging follower.
 *
 * Bounds (all -D macros): EXPIRIES session expiries in all, LOST replies
 * lost after the leader applied the write, CRASHES coordinator SIGKILLs,
 * FLIPS health changes of the instance, OP_ACTIONS operator commands,
 * ATTEMPTS pause transactions per deploy, COORD_B (0/1) runs coordinator B.
 *
 * The deploy journal (/deploys/<svc>/<id>, coordinator/journal.cc) is not a
 * process here: nothing in the protocol reads it, and its writes are
 * folded into the verify-and-start step below. It obeys one rule that ties
 * it to the flag: COMMAND starts only once the journal write recording its
 * start was answered, and when that first write failed it is made again
 * only through the session that holds the flag
 * (Journal::WriteInstanceInSession), never by the journal's flusher and
 * never from a renewed session. So a start on record was written under
 * the session that holds the flag, the csess[c] == paused the step below
 * requires before it sets cmd[c]. A start written from a renewed session
 * would be on record after the flag was gone, for a COMMAND that then
 * never ran.
 */

#ifndef FIX_RESUME
#define FIX_RESUME 1
#endif
#ifndef FIX_RESUME_SESSION
#define FIX_RESUME_SESSION FIX_RESUME
#endif
#ifndef FIX_RESUME_GUARD
#define FIX_RESUME_GUARD FIX_RESUME
#endif
#ifndef FIX_ADOPT
#define FIX_ADOPT 1
#endif
#ifndef FIX_GUARD
#define FIX_GUARD 1
#endif
#ifndef FIX_SYNC
#define FIX_SYNC 1
#endif
#ifndef FIX_WATCH
#define FIX_WATCH 1
#endif
#ifndef FIX_FENCE
#define FIX_FENCE 1
#endif
#ifndef FIX_LEARN
#define FIX_LEARN 1
#endif
#ifndef LEARN_SYNC
#define LEARN_SYNC FIX_LEARN
#endif
#ifndef RESYNC
#define RESYNC 0
#endif
#ifndef AGENT_FOLLOWER
#define AGENT_FOLLOWER 0
#endif

#ifndef EXPIRIES
#define EXPIRIES 1
#endif
#ifndef LOST
#define LOST 1
#endif
#ifndef CRASHES
#define CRASHES 1
#endif
#ifndef FLIPS
#define FLIPS 1
#endif
#ifndef OP_ACTIONS
#define OP_ACTIONS 2
#endif
#ifndef ATTEMPTS
#define ATTEMPTS 2
#endif
#ifndef COORD_B
#define COORD_B 1
#endif

/* F4: the verify also re-checks the service lock (StillHeld). */
#if FIX_FENCE
#define LOCK_STILL_OURS(l) (F_lock == (l))
#else
#define LOCK_STILL_OURS(l) true
#endif
#if FIX_RESUME_GUARD
#define RESUME_GUARD_OK(v) (L_pv == (v))
#else
#define RESUME_GUARD_OK(v) true
#endif

/* F1c reads the guard's version before the flag. GUARD_READ_AFTER=1 reads
 * it after the flag instead, to show that the order matters. */
#ifndef GUARD_READ_AFTER
#define GUARD_READ_AFTER 0
#endif
#if FIX_GUARD && !GUARD_READ_AFTER
#define GUARD_VERSION_BEFORE_FLAG rpv = F_pv
#else
#define GUARD_VERSION_BEFORE_FLAG skip
#endif
#if FIX_GUARD && GUARD_READ_AFTER
#define GUARD_VERSION_AFTER_FLAG rpv = F_pv
#else
#define GUARD_VERSION_AFTER_FLAG skip
#endif

/* Clients. A and B are coordinators (deploys), AG the agent, OP the
 * operator's CLI. Session ids are never 0: 0 is the ephemeralOwner of a
 * persistent node (a manual pause flag). */
#define A  0
#define B  1
#define AG 2
#define OP 3
#define SID(c, e) ((c) * 4 + (e) + 1)

/* ---------------------------------------------------------------------
 * ZooKeeper. The leader's state (L_) is the truth; every check op and
 * every write is evaluated against it in one atomic step, as the leader
 * applies a multi as one transaction. Reads are served by a follower
 * (F_), which shows some earlier leader state: it catches up to the
 * leader at any moment, and a client's own request (a write, or a failed
 * multi, which is an error transaction in the same log) brings it up to
 * date because the follower answers only after applying it. Only the
 * leader's own transactions (session expiry) leave the follower behind.
 *
 * Nodes: the flag /pause/<svc>/<ip>_<port> (exists, ephemeralOwner,
 * czxid as an incarnation number, the payload's author), the data version
 * of /pause/<svc> (the pause guard), of /services/<svc> (the registry
 * guard), the registration (exists, ephemeralOwner) and the service lock
 * (the session of the lowest lock node; 0 when free).
 * ------------------------------------------------------------------- */
bool L_flag; byte L_fown; byte L_finc; byte L_fby; byte L_pv; byte L_sv;
bool L_reg; byte L_rown; byte L_lock;
bool F_flag; byte F_fown; byte F_finc; byte F_fby; byte F_pv; byte F_sv;
bool F_reg; byte F_rown; byte F_lock;
bool lag;           /* the follower misses a leader transaction */
#if AGENT_FOLLOWER
/* AGENT_FOLLOWER=1: the agent is connected to a second follower, G, so
 * the coordinators' writes do not bring the agent's server up to date nor
 * the agent's writes theirs. */
bool G_flag; byte G_finc; byte G_fby; byte G_pv; bool G_reg; byte G_rown;
bool glag;
#endif

byte csess[4];      /* the session each client uses */
bool live[4];       /* the leader still holds that session */
byte expiries_left = EXPIRIES;
byte lost_left = LOST;
byte crashes_left = CRASHES;

byte incs;          /* czxid of the newest flag (an incarnation number) */
byte manual_inc;    /* incarnation of the operator's manual flag, 0: none */
bool ttl_over;      /* the manual flag's expires_at has passed */

/* Coordinators. */
bool running[2];    /* the process runs and holds a ZooKeeper client */
bool crashed[2];    /* SIGKILLed */
bool cmd[2];        /* its COMMAND runs */
byte fence[2];      /* ZKROLL_FENCE given to that COMMAND (the flag's czxid) */
bool lost_known[2]; /* the coordinator learned its session is lost while
                       its COMMAND ran */
bool kill_pending[2];

/* The agent's watches (see catch_up). */
bool pw_armed = true;
bool pw_fired;
bool rw_armed = FIX_WATCH;  /* F3: exists-watch on the registration */
bool rw_fired;

/* The agent's beliefs (read by `rest`). */
bool ag_reg = true;
bool ag_healthy = true;

/* Named invariants: a violation clears the bit, so spin's report names it. */
bool no_registration_while_paused = true;
bool command_only_while_flag_at_leader = true;
bool no_foreign_flag_deleted = true;
bool adopts_only_own_flag = true;
bool command_stopped_once_session_known_lost = true;
bool fences_order_commands = true;
bool every_pause_ends = true;
bool registered_at_rest = true;
bool deregistered_at_rest = true;

/* The agent's watches are set on the server it reads from: the children
 * watch on /pause/<svc> fires when that server applies a flag's creation
 * or deletion, the exists-watch (F3) when it applies the deletion of the
 * registration; the agent handles the event after that, so it never reads
 * a state older than the change it was told of. */
#define AGENT_WATCHES_FIRE(S)                                              \
  if                                                                       \
  :: pw_armed && (S##_flag != L_flag || S##_finc != L_finc) ->             \
     pw_armed = false; pw_fired = true                                     \
  :: else -> skip                                                          \
  fi;                                                                      \
  if                                                                       \
  :: rw_armed && S##_reg && !L_reg -> rw_armed = false; rw_fired = true    \
  :: else -> skip                                                          \
  fi

/* The follower F applies everything the leader has. */
inline catch_up() {
#if !AGENT_FOLLOWER
  AGENT_WATCHES_FIRE(F);
#endif
  F_flag = L_flag; F_fown = L_fown; F_finc = L_finc; F_fby = L_fby;
  F_pv = L_pv; F_sv = L_sv; F_reg = L_reg; F_rown = L_rown;
  F_lock = L_lock; lag = false
}

#if AGENT_FOLLOWER
/* The agent's own follower G (only what the agent reads). */
inline catch_up_agent() {
  AGENT_WATCHES_FIRE(G);
  G_flag = L_flag; G_finc = L_finc; G_fby = L_fby; G_pv = L_pv;
  G_reg = L_reg; G_rown = L_rown; glag = false
}
#define AGV(x) G_##x
#else
#define catch_up_agent catch_up
#define AGV(x) F_##x
#endif
#if AGENT_FOLLOWER
#define AGENT_SERVER_LAGS glag = true
#else
#define AGENT_SERVER_LAGS lag = true
#endif

/* A live flag forbids registration; a manual flag whose TTL passed does
 * not (PauseSnapshot::Forbids). */
#define LIVE_FLAG_AT_LEADER (L_flag && !(L_fby == OP && ttl_over))

/* Deletes the flag at the leader, asserting it is the incarnation the
 * deleter read (or created). */
inline delete_flag(want) {
  if
  :: L_finc != want -> no_foreign_flag_deleted = false
  :: else -> skip
  fi;
  assert(no_foreign_flag_deleted);
  L_flag = false; L_fown = 0; L_finc = 0; L_fby = 0
}

/* The leader expires session csess[c]: its ephemerals go in one
 * transaction. The client learns it later. */
inline expire(c) {
  live[c] = false;
  if
  :: L_flag && L_fown == csess[c] -> L_flag = false; L_fown = 0; L_finc = 0;
                                    L_fby = 0
  :: else -> skip
  fi;
  if
  :: L_reg && L_rown == csess[c] -> L_reg = false; L_rown = 0
  :: else -> skip
  fi;
  if
  :: L_lock == csess[c] -> L_lock = 0
  :: else -> skip
  fi;
  lag = true;
#if AGENT_FOLLOWER
  glag = true;
#endif
}

/* A client learns its session expired and the library opens a new one. */
inline renew(c) {
  csess[c]++;  /* SID(c, e + 1): EXPIRIES < 4 keeps it within c's range */
  live[c] = true
}

/* The reply of a write the leader applied may be lost (ConnectionLoss):
 * the client cannot tell whether it applied. */
inline maybe_lose(lost) {
  if
  :: lost_left > 0 -> lost_left--; lost = true
  :: true -> lost = false
  fi
}

/* ---------------------------------------------------------------------
 * The environment.
 * ------------------------------------------------------------------- */
proctype zookeeper() {
end:
  do
  /* A session expires at the leader (a partition, a GC pause, a dead
   * client). A SIGKILLed coordinator's session always expires in the end. */
  :: atomic { expiries_left > 0 && live[A] && running[A] && !crashed[A] ->
              expiries_left--; expire(A) }
  :: atomic { expiries_left > 0 && live[B] && running[B] && !crashed[B] ->
              expiries_left--; expire(B) }
  :: atomic { expiries_left > 0 && live[AG] -> expiries_left--; expire(AG) }
  :: atomic { live[A] && crashed[A] -> expire(A) }
  :: atomic { live[B] && crashed[B] -> expire(B) }
  /* A running coordinator's client learns of the expiry and opens a new
   * session. F4: the coordinator then stops COMMAND's process group. */
  :: atomic { running[A] && !crashed[A] && !live[A] ->
              renew(A);
              if
              :: cmd[A] -> lost_known[A] = true; kill_pending[A] = FIX_FENCE
              :: else -> skip
              fi }
  :: atomic { running[B] && !crashed[B] && !live[B] ->
              renew(B);
              if
              :: cmd[B] -> lost_known[B] = true; kill_pending[B] = FIX_FENCE
              :: else -> skip
              fi }
  /* The kill itself: an eventual step after the coordinator learned. */
  :: atomic { kill_pending[A] -> cmd[A] = false; kill_pending[A] = false;
              lost_known[A] = false; fence[A] = 0 }
  :: atomic { kill_pending[B] -> cmd[B] = false; kill_pending[B] = false;
              lost_known[B] = false; fence[B] = 0 }
  /* COMMAND ends by itself (also an orphan of a SIGKILLed coordinator). */
  :: atomic { cmd[A] -> cmd[A] = false; lost_known[A] = false;
              kill_pending[A] = false; fence[A] = 0 }
  :: atomic { cmd[B] -> cmd[B] = false; lost_known[B] = false;
              kill_pending[B] = false; fence[B] = 0 }
  /* SIGKILL of a coordinator: it stops at once, its session lives on
   * until ZooKeeper expires it, its COMMAND (if any) runs on. */
  :: atomic { crashes_left > 0 && running[A] && !crashed[A] ->
              crashes_left--; crashed[A] = true }
  :: atomic { crashes_left > 0 && running[B] && !crashed[B] ->
              crashes_left--; crashed[B] = true }
  :: atomic { lag -> catch_up() }
#if AGENT_FOLLOWER
  :: atomic { glag -> catch_up_agent() }
#endif
  :: atomic { manual_inc != 0 && !ttl_over -> ttl_over = true }
  od
}

/* ---------------------------------------------------------------------
 * A deploy of the instance (coordinator/deploy.cc, InstanceDeploy::Run).
 * ------------------------------------------------------------------- */
proctype coord(byte c) {
  byte attempts;
  byte sid_before;  /* the session the pause transaction ran on */
  byte paused;      /* paused_session_: the owner the deploy believes */
  byte my_inc;      /* ghost: the flag incarnation the deploy believes its */
  byte my_lock;     /* the session our lock node belongs to */
  byte want;        /* incarnation of the flag a delete means */
  byte rpv;         /* version of /pause/<svc> read before that flag */
  bool fe;          /* reads of the flag */
  byte f_own, f_inc, f_by;
  bool rreg;        /* ReadPauseContext */
  byte rsv;
  bool created;     /* flag_created_ */
  bool lost;
  byte res;         /* 0 ok, 1 raced / refused, 2 session expired, 3 gone */

  atomic { running[c] = true; live[c] = true; csess[c] = SID(c, 0) }
  {
    /* ServiceLock::Acquire. The sequential-node protocol is abstracted to
     * "take the lock iff no live lock node exists": our node is created,
     * then the children are read on the server that answered the create,
     * which therefore shows every lower node created before ours; a lower
     * node whose session expired may still show, which only makes us give
     * up, never take a held lock. */
    atomic {
      if
      :: live[c] && L_lock == 0 -> L_lock = csess[c]; my_lock = csess[c];
                                   catch_up()
      :: else -> goto finish
      fi
    }

    /* Pause (InstanceDeploy::Pause). */
pause_again:
    if
    :: attempts == ATTEMPTS -> goto finish
    :: else -> attempts++
    fi;
    /* The guard's version first: a pause in between then fails the guard. */
    GUARD_VERSION_BEFORE_FLAG;
    atomic { fe = F_flag; f_by = F_fby; f_inc = F_finc }
    if
    :: fe && f_by == OP && ttl_over ->
       GUARD_VERSION_AFTER_FLAG;
       /* An expired manual flag: remove it, then look again. */
       atomic {
#if FIX_GUARD
         if
         :: live[c] && L_pv == rpv && L_flag -> delete_flag(f_inc)
         :: else -> skip
         fi;
#else
         if
         :: live[c] && L_flag -> delete_flag(f_inc)  /* DeleteSync(flag, 0) */
         :: else -> skip
         fi;
#endif
         catch_up(); fe = false; f_by = 0; f_inc = 0; rpv = 0
       }
       goto pause_again
    :: fe && !(f_by == OP && ttl_over) -> goto finish  /* paused by someone else */
    :: !fe -> f_by = 0; f_inc = 0; rpv = 0
    fi;
    /* ReadPauseContext: registered?, and the registry guard's version. */
    atomic { rreg = F_reg; rsv = F_sv }
    /* PauseOps: bump /pause/<svc>, create the ephemeral flag, delete the
     * registration or check /services/<svc> at the version read. */
    atomic {
      sid_before = csess[c];
      if
      :: !live[c] -> res = 2
      :: live[c] && (L_flag || (rreg && !L_reg) || (!rreg && L_sv != rsv)) ->
         res = 1; catch_up()
      :: else ->
         L_pv++; incs++;
         L_flag = true; L_fown = csess[c]; L_finc = incs; L_fby = c;
         if
         :: rreg -> L_reg = false; L_rown = 0
         :: else -> skip
         fi;
         my_inc = incs;
         catch_up();
         maybe_lose(lost);
         res = 0
      fi;
      rreg = false; rsv = 0
    }
    if
    :: res == 2 -> goto finish  /* SessionExpired: "refused" */
    :: res == 1 -> res = 0; goto pause_again
    :: res == 0 && lost ->
       /* ConnectionLoss: read the flag back (on whatever session we have
        * now); ours only if created by sid_before with our payload. */
       lost = false;
       atomic {
         if
         :: F_flag && F_fown == sid_before && F_fby == c -> skip
         :: else -> my_inc = 0; goto pause_again
         fi
       }
    :: else -> skip
    fi;
    created = true;
    paused = sid_before;
    /* The session changed since the transaction: read the flag back. */
    atomic {
      if
      :: csess[c] != sid_before ->
         if
         :: !F_flag -> goto finish  /* kSessionLost, no Resume */
         :: else ->
#if FIX_ADOPT
            if
            :: F_fby == c -> paused = F_fown; my_inc = F_finc
            :: else -> goto finish
            fi
#else
            if
            :: F_fby != c -> adopts_only_own_flag = false
            :: else -> skip
            fi;
            assert(adopts_only_own_flag);
            paused = F_fown; my_inc = F_finc
#endif
         fi
      :: else -> skip
      fi
    }

    /* Drain: a wait that reads and writes none of these nodes, so it is
     * the interleaving itself. Verify, then COMMAND. Nothing observable
     * happens between the verify's read and the start of COMMAND, so an
     * expiry in between is the same as one just after the start: the two
     * are one step, and the window after it is F4's. The journal's record
     * of the start belongs to this step too: its retry goes only through
     * the session that holds the flag (see the header), the csess[c] ==
     * paused of the condition below. */
    atomic {
#if FIX_SYNC
      catch_up();  /* sync(): the follower has what the leader had */
#endif
      if
      :: F_flag && F_fown == paused && csess[c] == paused &&
         LOCK_STILL_OURS(my_lock) ->
         if
         :: !(L_flag && L_finc == my_inc && L_fby == c) ->
            command_only_while_flag_at_leader = false
         :: else -> skip
         fi;
         assert(command_only_while_flag_at_leader);
         cmd[c] = true; fence[c] = my_inc
      :: else -> skip  /* kSessionLost: AbortPath resumes */
      fi;
      /* What the rest of the deploy no longer reads. */
      attempts = 0; sid_before = 0; my_inc = 0; my_lock = 0
    }
    /* COMMAND runs until it ends or is killed. Whatever the checks after it
     * say, every outcome goes through Resume (success, FailurePath,
     * AbortPath), and they read no protocol node the model needs. */
    !cmd[c];

resume:
    /* InstanceDeploy::Resume. With the guard (F1a) every attempt starts
     * here: the guard's version, then the flag, then the guarded delete
     * bound to our session. Without it, a failed attempt resends the same
     * plain delete (delete_again). */
#if FIX_RESUME_GUARD
    rpv = F_pv;
#endif
    atomic {
      fe = F_flag; f_own = F_fown; f_inc = F_finc;
      if
      :: !fe || f_own != paused -> goto finish
      :: else -> want = f_inc; fe = false; f_own = 0; f_inc = 0
      fi
    }
delete_again:
    atomic {
#if FIX_RESUME_SESSION
      if
      :: csess[c] != paused -> goto finish  /* a dead session's flag is gone */
      :: else -> skip
      fi;
#endif
      if
      :: !live[c] -> res = 2
#if FIX_RESUME_GUARD
      :: live[c] && L_pv != rpv -> res = 1; catch_up()  /* Aborted */
#endif
      :: live[c] && !L_flag && RESUME_GUARD_OK(rpv) -> res = 3; catch_up()  /* NotFound: already gone */
      :: else -> delete_flag(want); catch_up(); maybe_lose(lost);
                 res = (lost -> 2 : 0); lost = false
      fi
    }
    if
#if FIX_RESUME_GUARD
    /* Connection loss or an expired session: read again (on a new session
     * the check above ends it); Aborted (the guard moved): read again. */
    :: res == 2 -> res = 0; live[c]; goto resume
    :: res == 1 -> res = 0; goto resume
#else
    :: res == 2 -> res = 0; live[c]; goto delete_again  /* Retrying(...) */
#endif
    :: else -> goto finish
    fi;

finish:
    skip
  } unless { crashed[c] };

  /* The process exits (or was killed): an orderly exit closes the session,
   * which deletes its ephemerals; a killed one leaves them to the expiry. */
  atomic {
    if
    :: !crashed[c] && live[c] -> expire(c); catch_up()
    :: else -> skip
    fi;
    running[c] = false
  }
}

/* ---------------------------------------------------------------------
 * The agent (agent/agent.cc, agent/pause_watcher.cc) for the one instance.
 * At the start it is healthy and registered, with its watches armed.
 * ------------------------------------------------------------------- */
proctype agent() {
  bool view_ok = true;   /* PauseSnapshot::known */
  bool vflag;            /* a flag names the instance */
  bool vmanual;          /* ... and it is the manual one (it has a TTL) */
  byte vpv;              /* the pause guard's version the view was read at */
  byte flips = FLIPS;
  bool lost;
  bool unknown;          /* outcome_unknown: a registration reply was lost */

end:
  do
  /* Session expired: registrations and watches are gone; start over. */
  :: atomic { !live[AG] ->
       renew(AG); ag_reg = false; unknown = false; view_ok = false;
       pw_armed = false; pw_fired = false; rw_armed = false; rw_fired = false }
  /* The pause watcher reads the guard's version and the flags (and
   * re-arms its watch): on a watch event, after the guard refused a
   * registration, on a new session. The children and the guard's version
   * come from one GetChildren, so reading them in one step is exact; the
   * flag's payload is read after, but a flag replaced in between was
   * created by a pause that also bumped the guard, and the registration
   * made from this view then fails its check. */
  :: atomic { (!view_ok || pw_fired) ->
       vpv = AGV(pv); vflag = AGV(flag);
       vmanual = (AGV(flag) && AGV(fby) == OP);
       view_ok = true; pw_armed = true; pw_fired = false }
  /* Reconcile -> Register: check the pause guard, create the ephemeral,
   * bump /services/<svc>. */
  :: atomic { view_ok && ag_healthy && !(vflag && !(vmanual && ttl_over)) &&
              !ag_reg && !unknown ->
       if
       :: !live[AG] -> skip  /* SessionExpired: retried on the new session */
       :: live[AG] && L_pv != vpv -> view_ok = false; catch_up_agent()
       :: live[AG] && L_pv == vpv && L_reg ->
          /* NodeExists: Get it and compare its owner with our session. */
          catch_up_agent();
          if
          :: L_rown == csess[AG] -> ag_reg = true; rw_armed = FIX_WATCH
          :: else -> skip  /* another owner: not touched (one agent here) */
          fi
       :: else ->
          if
          :: LIVE_FLAG_AT_LEADER -> no_registration_while_paused = false
          :: else -> skip
          fi;
          assert(no_registration_while_paused);
          L_reg = true; L_rown = csess[AG]; L_sv++;
          maybe_lose(lost);
          if
          :: !lost -> catch_up_agent(); ag_reg = true; rw_armed = FIX_WATCH
          :: else ->
             /* "could not register (will retry)", yet it applied. The
              * client reconnects to the next server of its list, which
              * need not have applied it yet. */
             lost = false;
             if
             :: catch_up_agent()
             :: AGENT_SERVER_LAGS
             fi;
#if FIX_LEARN
             unknown = true
#else
             skip
#endif
          fi
       fi }
  /* Registration::Learn: before any other decision, Get the node; ours only
   * if its owner is our current session. */
  :: atomic { view_ok && unknown ->
#if LEARN_SYNC
       catch_up_agent();  /* sync(): the server has what the leader had */
#endif
       unknown = false;
       ag_reg = (AGV(reg) && AGV(rown) == csess[AG]);
       if
       :: ag_reg -> rw_armed = FIX_WATCH  /* Registration::Check */
       :: else -> skip
       fi }
  /* Reconcile -> Deregister (Delete at version -1). */
  :: atomic { view_ok && !(ag_healthy && !(vflag && !(vmanual && ttl_over))) &&
              ag_reg ->
       if
       :: live[AG] -> rw_armed = false; rw_fired = false;
                      L_reg = false; L_rown = 0; catch_up_agent(); ag_reg = false
       :: else -> skip
       fi }
  /* F3: someone else deleted our registration: believe it gone, and the
   * next Reconcile registers through the guard. */
  :: atomic { rw_fired -> rw_fired = false; ag_reg = false }
#if RESYNC
  /* The slow resync: Exists on the registration; gone or not ours means
   * register again. */
  :: atomic { ag_reg && (!AGV(reg) || AGV(rown) != csess[AG]) -> ag_reg = false }
#endif
  /* The health monitor's verdict changes (rise/fall abstracted). */
  :: atomic { flips > 0 -> flips--; ag_healthy = !ag_healthy }
  od
}

/* ---------------------------------------------------------------------
 * The operator's CLI (coordinator/maintenance.cc, inventory.cc, status.cc).
 * Manual flags are persistent (owner 0): the operator's session holds no
 * ephemeral, so its expiry changes nothing and is not modelled.
 * ------------------------------------------------------------------- */

/* RemoveExpiredFlags: read the flags, delete the expired ones. */
inline sweep() {
  GUARD_VERSION_BEFORE_FLAG;
  atomic { fe = F_flag; f_by = F_fby; f_inc = F_finc }
  if
  :: fe && f_by == OP && ttl_over ->
     GUARD_VERSION_AFTER_FLAG;
     atomic {
#if FIX_GUARD
       if
       :: L_pv == rpv && L_flag -> delete_flag(f_inc)
       :: else -> skip
       fi;
#else
       if
       :: L_flag -> delete_flag(f_inc)
       :: else -> skip
       fi;
#endif
       catch_up()
     }
  :: else -> skip
  fi;
  fe = false; f_by = 0; f_inc = 0; rpv = 0
}

proctype operator() {
  byte n = OP_ACTIONS;
  byte rpv;
  bool fe;
  byte f_by, f_inc, f_own;
  bool rreg;
  byte rsv;

  do
  :: n > 0 && manual_inc == 0 ->
     /* zkroll pause --ttl: sweep, then the same pause transaction with a
      * persistent flag. */
     n--;
     sweep();
     atomic { fe = F_flag }
     if
     :: fe -> fe = false  /* "already paused" */
     :: else ->
        atomic { rreg = F_reg; rsv = F_sv }
        atomic {
          if
          :: L_flag || (rreg && !L_reg) || (!rreg && L_sv != rsv) -> skip
          :: else ->
             L_pv++; incs++;
             L_flag = true; L_fown = 0; L_finc = incs; L_fby = OP;
             manual_inc = incs;
             if
             :: rreg -> L_reg = false; L_rown = 0
             :: else -> skip
             fi
          fi;
          catch_up(); rreg = false; rsv = 0
        }
     fi
  :: n > 0 && manual_inc != 0 ->
     /* zkroll resume (without --force). */
     n--;
     GUARD_VERSION_BEFORE_FLAG;
     atomic { fe = F_flag; f_own = F_fown; f_inc = F_finc }
     if
     :: fe && f_own == 0 ->
        GUARD_VERSION_AFTER_FLAG;
        atomic {
#if FIX_GUARD
          if
          :: L_pv == rpv && L_flag -> delete_flag(f_inc)
          :: else -> skip
          fi;
#else
          if
          :: L_flag -> delete_flag(f_inc)
          :: else -> skip
          fi;
#endif
          catch_up()
        }
     :: else -> skip  /* not paused, or a running deploy's flag: refused */
     fi;
     fe = false; f_own = 0; f_inc = 0; rpv = 0
  :: n > 0 ->
     /* zkroll status. With F1 it reads only, and a reader changes nothing
      * the model holds; without F1 it sweeps. */
     n--;
#if !FIX_GUARD
     sweep()
#else
     skip
#endif
  :: n == 0 -> break
  od
}

/* ---------------------------------------------------------------------
 * Invariants.
 * ------------------------------------------------------------------- */

/* Checked in every state: COMMAND runs on only while its coordinator has
 * not learned that its session is gone (or is killing it), and of two
 * COMMANDs running at once the newer has the larger ZKROLL_FENCE and is
 * the one whose flag is at the leader. */
#define FENCED(c) (!cmd[c] || !lost_known[c] || kill_pending[c])
#define NEWEST_AT_LEADER(x, y) \
  (!(L_flag && L_finc == fence[x]) || fence[x] > fence[y])
#define FENCES_ORDERED                                                     \
  (!(cmd[A] && cmd[B]) ||                                                  \
   (fence[A] != fence[B] && NEWEST_AT_LEADER(A, B) &&                      \
    NEWEST_AT_LEADER(B, A)))

proctype monitor() {
end:
  atomic {
    !(FENCED(A) && FENCED(B) && FENCES_ORDERED) ->
    command_stopped_once_session_known_lost = FENCED(A) && FENCED(B);
    fences_order_commands = FENCES_ORDERED;
    assert(command_stopped_once_session_known_lost);
    assert(fences_order_commands)
  }
}

/* When nothing can move any more (every deploy finished or was killed and
 * its session expired, the follower caught up, every watch was handled):
 * no pause is left (the manual one has expired), and the instance is
 * registered by the agent's current session if it is healthy, and the
 * agent knows it; if it is unhealthy, it is not registered at all. No
 * periodic resync exists here (RESYNC=0), so this is "registered again
 * without the resync". */
proctype rest() {
  timeout ->
  atomic {
    every_pause_ends = !LIVE_FLAG_AT_LEADER && !cmd[A] && !cmd[B];
    assert(every_pause_ends);
    registered_at_rest =
        !ag_healthy || (L_reg && ag_reg && L_rown == csess[AG]);
    assert(registered_at_rest);
    /* An unhealthy (or paused) instance is not registered. FIX_LEARN off:
     * a registration whose reply was lost leaves the agent believing it is
     * not registered, so it never deletes it. */
    deregistered_at_rest = (ag_healthy && !LIVE_FLAG_AT_LEADER) || !L_reg;
    assert(deregistered_at_rest)
  }
}

init {
  atomic {
    live[AG] = true; csess[AG] = SID(AG, 0);
    live[OP] = true; csess[OP] = SID(OP, 0);
    L_reg = true; L_rown = SID(AG, 0); L_sv = 1;
    catch_up();
#if AGENT_FOLLOWER
    catch_up_agent();
#endif
    run zookeeper(); run agent(); run operator(); run monitor(); run rest();
    run coord(A);
#if COORD_B
    run coord(B);
#endif
  }
}
