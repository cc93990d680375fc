//! A lock built only on the clerk's versioned Get and Put (lab 2, §3.3): the
//! key holds the owner's name, or "" when free. Sans-IO: the lock says which
//! operation to run next, and the caller feeds it each outcome.

use crate::op::{Op, Outcome};
use crate::types::Version;

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockStep {
    /// Run this operation and pass its outcome to [`Lock::on_outcome`].
    Run(Op),
    /// Someone else holds the lock: run this operation after a pause.
    Wait(Op),
    /// The lock is ours.
    Acquired,
    /// The lock is released.
    Released,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Free,
    /// Reading the lock key to see whether it is free.
    Probing,
    /// Trying to write our name at the version read.
    Claiming(Version),
    /// We hold it; the key is at this version.
    Held(Version),
    /// Writing "" at the version we hold.
    Releasing(Version),
    /// A release came back ErrMaybe: reading to see whether it happened.
    CheckingRelease,
}

/// A distributed lock stored under one key.
#[derive(Clone, Debug)]
pub struct Lock {
    key: String,
    me: String,
    state: State,
}

impl Lock {
    /// A lock on `key` for the owner named `me` (unique among contenders,
    /// never empty).
    pub fn new(key: impl Into<String>, me: impl Into<String>) -> Lock {
        let me = me.into();
        assert!(!me.is_empty(), "a lock owner needs a non-empty name");
        Lock {
            key: key.into(),
            me,
            state: State::Free,
        }
    }

    /// True while held.
    pub fn is_held(&self) -> bool {
        matches!(self.state, State::Held(_))
    }

    /// Start acquiring: returns the first operation to run.
    pub fn acquire(&mut self) -> LockStep {
        assert_eq!(
            self.state,
            State::Free,
            "acquire on a lock that is not free"
        );
        self.state = State::Probing;
        LockStep::Run(self.get())
    }

    /// Start releasing: returns the first operation to run.
    pub fn release(&mut self) -> LockStep {
        let State::Held(version) = self.state else {
            panic!("release of a lock that is not held");
        };
        self.state = State::Releasing(version);
        LockStep::Run(self.put("", version))
    }

    /// Feed the outcome of the last operation.
    pub fn on_outcome(&mut self, outcome: Outcome) -> LockStep {
        match (&self.state, outcome) {
            (State::Probing, Outcome::ErrNoKey) => self.claim(Version(0)),
            (State::Probing, Outcome::Value { value, version }) => {
                if value.is_empty() {
                    self.claim(version)
                } else if value == self.me {
                    // An earlier claim answered ErrMaybe did take effect.
                    self.state = State::Held(version);
                    LockStep::Acquired
                } else {
                    LockStep::Wait(self.get())
                }
            }
            (State::Claiming(v), Outcome::Ok) => {
                self.state = State::Held(Version(v.0 + 1));
                LockStep::Acquired
            }
            // Lost the race, or unsure whether we won: look again.
            (State::Claiming(_), _) => {
                self.state = State::Probing;
                LockStep::Run(self.get())
            }
            (State::Releasing(_), Outcome::Ok) => {
                self.state = State::Free;
                LockStep::Released
            }
            (State::Releasing(_), _) => {
                self.state = State::CheckingRelease;
                LockStep::Run(self.get())
            }
            (State::CheckingRelease, Outcome::Value { value, version }) if value == self.me => {
                self.state = State::Releasing(version);
                LockStep::Run(self.put("", version))
            }
            (State::CheckingRelease, _) => {
                self.state = State::Free;
                LockStep::Released
            }
            (state, outcome) => {
                panic!("lock in state {state:?} got unexpected outcome {outcome:?}")
            }
        }
    }

    fn claim(&mut self, version: Version) -> LockStep {
        self.state = State::Claiming(version);
        LockStep::Run(self.put(&self.me.clone(), version))
    }

    fn get(&self) -> Op {
        Op::Get {
            key: self.key.clone(),
        }
    }

    fn put(&self, value: &str, version: Version) -> Op {
        Op::Put {
            key: self.key.clone(),
            value: value.to_string(),
            version,
        }
    }
}
