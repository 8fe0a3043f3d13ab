/* The page: consent, a selfie (camera or file), what the camera saw with a way to correct it,
   and a list that changes with every like. It talks only to the public API under v1/, so
   anything it does, a partner's app can do too. Plain browser JavaScript: no build step. */
"use strict";

(() => {
  // The model's age bands, and the age sent to re-rank for a band someone picked by hand
  // (any age inside the band gives the same list; the middle reads naturally).
  const AGE_BANDS = [
    ["0-17", 15, "under 18"], ["18-24", 21, "18 to 24"], ["25-34", 30, "25 to 34"], ["35-44", 40, "35 to 44"],
    ["45-49", 47, "45 to 49"], ["50-55", 52, "50 to 55"], ["56+", 62, "56 and over"],
  ];
  const LIST_SIZE = 10;
  const GENDER_WORDS = { F: "woman", M: "man" };
  const AUDIENCE = { F: "women", M: "men" };
  const QUALITY_WORDS = {
    small: "your face looked small (step a little closer)",
    blurred: "the photo looked blurred (hold still)",
    uncertain_detection: "the face was hard to make out (face the light)",
  };
  // What a person sees for each error the API can return: a headline and what to do next.
  const MESSAGES = {
    no_face: ["We couldn't find a face in that photo.",
      "Face the camera in good light, with nothing covering your face, and try again, or choose another photo."],
    unusable_photo: ["That photo couldn't be read.", "It may be damaged or cut off. Take the photo again or choose another one."],
    too_large: ["That photo is too large.", "Choose a smaller photo (at most 12 MB), or use the camera instead."],
    unsupported_image: ["That file isn't a photo we can read.",
      "Choose a JPEG, PNG or WebP picture. On an iPhone, pick the photo from Photos or set the camera to \u201cMost Compatible\u201d."],
    unsupported_media_type: ["That file isn't a photo we can read.", "Choose a JPEG, PNG or WebP picture."],
    not_ready: ["The recommender is getting ready.", "It is loading its model. Please try again in a few seconds."],
    busy: ["The service is busy right now.", "Please try again in a moment."],
    broken_model: ["Recommendations are unavailable right now.", "The model could not be loaded. Please let a member of staff know."],
    unknown_user: ["We don't know that customer number.", "Check the number, or start as a new visitor with a photo."],
    erased: ["That customer's data was erased at their request.", "Their list can no longer be shown."],
    unknown_item: ["That film is no longer in the catalog.", "The list has been refreshed; please try again."],
    not_found: ["That couldn't be found.", "Please start over."],
    invalid_request: ["The service didn't accept that request.", ""],
    internal: ["Something went wrong on our side.", "Please try again. If it keeps happening, let a member of staff know."],
    network: ["We can't reach the service.", "Check the network connection and try again."],
    error: ["Something went wrong.", "Please try again."],
  };

  const $ = (id) => document.getElementById(id);
  const views = ["consent-view", "camera-view", "form-view", "results-view"];

  const state = {
    sessionId: newSessionId(),
    userId: null, // a returning customer's id, or null for a new visitor
    person: null, // a new visitor: {age, gender, band, source: "camera" | "form"}
    camera: null, // what the camera saw (the selfie response's `camera`), or null
    otherFaces: 0,
    liked: [],
    disliked: [],
    titles: new Map(),
    shown: [],
    stream: null,
    sequence: 0, // the newest list request; older answers are ignored
  };

  function newSessionId() {
    // crypto.randomUUID needs a secure context; getRandomValues works on plain http too.
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    return "page-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // ------------------------------------------------------------------ the API

  class ApiError extends Error {
    constructor(status, code, detail) {
      super(detail);
      this.status = status;
      this.code = code;
      this.detail = detail;
    }
  }

  const HTTP_CODES = { 404: "not_found", 410: "erased", 413: "too_large", 415: "unsupported_image", 422: "invalid_request", 429: "busy", 503: "not_ready" };

  async function api(path, { method = "GET", json, form } = {}) {
    const options = { method, headers: { Accept: "application/json" } };
    if (json !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(json);
    } else if (form !== undefined) {
      options.body = form;
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (e) {
      throw new ApiError(0, "network", String((e && e.message) || e));
    }
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (e) {
      body = null;
    }
    if (!response.ok) {
      const code = (body && body.error) || HTTP_CODES[response.status] || (response.status >= 500 ? "internal" : "error");
      throw new ApiError(response.status, code, (body && body.detail) || response.statusText);
    }
    return body;
  }

  // ------------------------------------------------------------------ messages

  function showError(error, context) {
    const known = error instanceof ApiError ? error : new ApiError(0, "error", String(error));
    const [title, hint] = MESSAGES[known.code] || MESSAGES.error;
    $("error-title").textContent = context ? `${context} ${title}` : title;
    // A request the service refused says which field was wrong; people and staff both need that.
    const detail = known.code === "invalid_request" || !MESSAGES[known.code] ? known.detail : "";
    $("error-detail").textContent = [hint, detail].filter(Boolean).join(" ");
    $("error").dataset.code = known.code;
    $("error").hidden = false;
    if (console && console.warn) console.warn("API error", known.status, known.code, known.detail);
  }

  function clearError() {
    $("error").hidden = true;
    delete $("error").dataset.code;
  }

  function announce(text) {
    // Cleared first, so the same words twice are read twice.
    $("status").textContent = "";
    window.setTimeout(() => { $("status").textContent = text; }, 30);
  }

  function busy(text) {
    $("busy-text").textContent = text;
    $("busy").hidden = false;
    document.body.setAttribute("aria-busy", "true");
  }

  function idle() {
    $("busy").hidden = true;
    document.body.removeAttribute("aria-busy");
  }

  // ------------------------------------------------------------------ views

  function show(view, focusId) {
    for (const id of views) $(id).hidden = id !== view;
    document.body.dataset.view = view;
    $("restart").hidden = view === "consent-view";
    const target = focusId ? $(focusId) : $(view).querySelector("h1, h2");
    if (target) target.focus({ preventScroll: false });
    window.scrollTo({ top: 0 });
  }

  function startOver() {
    stopCamera();
    clearError();
    Object.assign(state, {
      sessionId: newSessionId(), userId: null, person: null, camera: null, otherFaces: 0,
      liked: [], disliked: [], shown: [], sequence: state.sequence + 1,
    });
    $("items").replaceChildren();
    $("returning-form").reset();
    $("demographic-form").reset();
    document.body.dataset.session = state.sessionId;
    show("consent-view", "consent-title");
  }

  // ------------------------------------------------------------------ camera and upload

  async function openCamera() {
    clearError();
    show("camera-view", "camera-title");
    setCameraAvailable(true);
    $("capture").disabled = true;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      cameraUnavailable("This browser can't open the camera on this page. Upload a photo instead, or answer two questions.");
      return;
    }
    try {
      state.stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: "user", width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false,
      });
    } catch (e) {
      const why = {
        NotAllowedError: "Camera permission was denied.",
        SecurityError: "Camera permission was denied.",
        NotFoundError: "No camera was found on this device.",
        OverconstrainedError: "No suitable camera was found on this device.",
        NotReadableError: "The camera is busy in another app.",
      }[e && e.name] || "The camera couldn't be started.";
      cameraUnavailable(`${why} You can upload a photo instead, or answer two questions.`);
      return;
    }
    if (document.body.dataset.view !== "camera-view") { stopCamera(); return; } // left while asking
    const video = $("preview");
    video.srcObject = state.stream;
    const ready = () => {
      $("capture").disabled = false;
      $("stage").classList.add("live");
    };
    if (video.readyState >= 2) ready(); else video.addEventListener("loadeddata", ready, { once: true });
    try { await video.play(); } catch (e) { /* autoplay is muted; a refusal still leaves frames to draw */ }
  }

  function setCameraAvailable(available) {
    $("capture").hidden = !available;
    $("stage-message").hidden = available;
    $("stage").classList.toggle("no-camera", !available);
    $("upload-button").classList.toggle("primary", !available);
    $("upload-button").classList.toggle("secondary", available);
    $("upload-button").textContent = available ? "Upload a photo instead" : "Choose a photo";
  }

  function cameraUnavailable(message) {
    stopCamera();
    setCameraAvailable(false);
    $("stage-message").textContent = message;
    $("camera-help").textContent = message;
    $("upload-button").focus();
    announce(message);
  }

  function stopCamera() {
    if (state.stream) for (const track of state.stream.getTracks()) track.stop();
    state.stream = null;
    const video = $("preview");
    video.srcObject = null;
    $("stage").classList.remove("live");
  }

  async function capture() {
    const video = $("preview");
    if (!video.videoWidth) return;
    startTimer("capture-to-list");
    const scale = Math.min(1, 1280 / Math.max(video.videoWidth, video.videoHeight));
    const canvas = $("snapshot");
    canvas.width = Math.round(video.videoWidth * scale);
    canvas.height = Math.round(video.videoHeight * scale);
    const context = canvas.getContext("2d");
    context.drawImage(video, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
    // The page keeps no copy: the pixels are wiped before the upload starts.
    context.clearRect(0, 0, canvas.width, canvas.height);
    canvas.width = canvas.height = 0;
    await sendPhoto(blob, "capture-to-list");
  }

  async function uploadChosen() {
    const input = $("upload");
    const file = input.files && input.files[0];
    input.value = ""; // the page drops its reference; the same file can be chosen again
    if (!file) return;
    startTimer("upload-to-list");
    await sendPhoto(file, "upload-to-list");
  }

  async function sendPhoto(photo, timer) {
    clearError();
    let form = new FormData();
    form.append("photo", photo, "selfie");
    form.append("k", String(LIST_SIZE));
    form.append("session_id", state.sessionId);
    busy("Looking at your photo\u2026");
    $("capture").disabled = true;
    let body;
    try {
      body = await api("v1/recommendations/selfie", { method: "POST", form });
    } catch (e) {
      idle();
      $("capture").disabled = !state.stream;
      showError(e);
      announce($("error-title").textContent);
      return;
    } finally {
      form.delete("photo");
      form = null;
    }
    stopCamera();
    state.userId = null;
    state.camera = body.camera;
    state.otherFaces = body.other_faces;
    state.person = { age: body.camera.age, gender: body.camera.gender_for_recommendation, band: body.camera.age_band, source: "camera" };
    renderProfile();
    renderList(body);
    idle();
    show("results-view", "profile-title");
    announce(`${sawSentence()}. ${body.items.length} films are ready.`);
    endTimer(timer);
  }

  // ------------------------------------------------------------------ the form (no camera)

  function submitForm(event) {
    event.preventDefault();
    clearError();
    const band = $("form-band").value;
    $("form-band-error").hidden = !!band;
    $("form-band").setAttribute("aria-invalid", band ? "false" : "true");
    if (!band) { $("form-band").focus(); return; }
    const gender = document.querySelector("input[name=form-gender]:checked").value || null;
    state.userId = null;
    state.camera = null;
    state.otherFaces = 0;
    state.person = { age: bandMiddle(band), gender, band, source: "form" };
    refreshList({ first: true });
  }

  // ------------------------------------------------------------------ returning customer

  function submitReturning(event) {
    event.preventDefault();
    clearError();
    const raw = $("user-id").value.trim();
    if (!/^\d{1,18}$/.test(raw)) {
      showError(new ApiError(0, "invalid_request", ""), "");
      $("error-title").textContent = "Enter a customer number using digits only.";
      $("error-detail").textContent = "For example 42.";
      $("user-id").setAttribute("aria-invalid", "true");
      $("user-id").focus();
      return;
    }
    $("user-id").setAttribute("aria-invalid", "false");
    state.userId = Number(raw);
    state.person = null;
    state.camera = null;
    state.liked = [];
    state.disliked = [];
    refreshList({ first: true });
  }

  // ------------------------------------------------------------------ lists

  function bandMiddle(band) {
    const found = AGE_BANDS.find(([name]) => name === band);
    return found ? found[1] : null;
  }

  function listRequest() {
    const request = { k: LIST_SIZE, liked_items: state.liked, disliked_items: state.disliked };
    if (state.userId !== null) return { ...request, user_id: state.userId };
    request.session_id = state.sessionId;
    if (state.person.age !== null) request.age = state.person.age;
    if (state.person.gender) request.gender = state.person.gender;
    return request;
  }

  async function refreshList({ first = false, timer = null, onError = null } = {}) {
    const sequence = ++state.sequence;
    $("items").setAttribute("aria-busy", "true");
    $("items").classList.add("loading");
    if (first) busy("Finding your films\u2026");
    let body;
    try {
      body = await api("v1/recommendations", { method: "POST", json: listRequest() });
    } catch (e) {
      if (sequence !== state.sequence) return;
      $("items").setAttribute("aria-busy", "false");
      $("items").classList.remove("loading");
      idle();
      if (onError) onError();
      showError(e);
      announce($("error-title").textContent);
      return;
    }
    if (sequence !== state.sequence) return; // a newer request is on its way
    idle();
    renderProfile(body);
    renderList(body);
    if (first) {
      show("results-view", "profile-title");
      announce(`${body.items.length} films are ready.`);
    }
    if (timer) endTimer(timer);
    return body;
  }

  function audience(basis) {
    const band = AGE_BANDS.find(([name]) => name === basis.age_band);
    const who = AUDIENCE[basis.gender] || "people";
    return band ? `${who} aged ${band[2]}` : (who === "people" ? "people like you" : who);
  }

  function reasonText(item, basis) {
    if (item.reason === "liked_items") {
      const titles = item.because.map((id) => state.titles.get(id)).filter(Boolean);
      return titles.length ? `Because you liked ${titles.join(", ")}` : "Because of what you liked";
    }
    if (item.reason === "personal_history") return "Picked from your viewing history";
    return `Popular with ${audience(basis)}`;
  }

  // Catalogs like MovieLens write "English Patient, The (1996)": the year has its own field,
  // and the article goes back in front.
  const TRAILING_ARTICLE = /^(.+), (The|A|An|Les|La|Le|L'|Il|Das|Der|Die|El)$/;

  const YEAR_IN_TITLE = /^(.+?)\s*\((\d{4})\)$/;

  // The year in the title wins over the `year` field, which can be a later re-release date.
  function displayTitle(item) {
    let title = String(item.title).trim();
    let year = item.year || null;
    const dated = title.match(YEAR_IN_TITLE);
    if (dated) [title, year] = [dated[1], Number(dated[2])];
    const article = title.match(TRAILING_ARTICLE);
    if (article) title = article[2].endsWith("'") ? article[2] + article[1] : `${article[2]} ${article[1]}`;
    return { title, year };
  }

  function renderList(body) {
    const before = new Set(state.shown);
    const template = $("item-template").content;
    const nodes = body.items.map((listed) => {
      const item = { ...listed, ...displayTitle(listed) };
      state.titles.set(item.item_id, item.title);
      const node = template.firstElementChild.cloneNode(true);
      node.dataset.itemId = item.item_id;
      node.dataset.reason = item.reason;
      node.querySelector(".rank").textContent = item.rank;
      node.querySelector(".title").textContent = item.title;
      node.querySelector(".year").textContent = item.year ? `(${item.year})` : "";
      const genres = node.querySelector(".genres");
      genres.setAttribute("aria-label", "Genres");
      for (const genre of item.genres) {
        const chip = document.createElement("li");
        chip.textContent = genre;
        genres.append(chip);
      }
      const reason = node.querySelector(".reason");
      reason.textContent = reasonText(item, body.basis);
      reason.classList.add(`reason-${item.reason}`);
      if (before.size && !before.has(item.item_id)) {
        node.classList.add("is-new");
        const tag = document.createElement("span");
        tag.className = "new-tag";
        tag.textContent = "New";
        node.querySelector(".item-title").append(" ", tag);
      }
      const votes = node.querySelector(".votes");
      votes.setAttribute("aria-label", `Your opinion of ${item.title}`);
      const like = node.querySelector(".like");
      const dislike = node.querySelector(".dislike");
      like.setAttribute("aria-label", `Like ${item.title}`);
      dislike.setAttribute("aria-label", `Not for me: ${item.title}`);
      like.addEventListener("click", () => vote(item, "like", node));
      dislike.addEventListener("click", () => vote(item, "dislike", node));
      return node;
    });
    $("items").replaceChildren(...nodes);
    performance.mark("list-rendered"); // in the DOM; the timers end after the next paint
    $("items").setAttribute("aria-busy", "false");
    $("items").classList.remove("loading");
    state.shown = body.items.map((item) => item.item_id);
    $("empty").hidden = body.items.length > 0;
    $("list-title").textContent = body.items.length === LIST_SIZE ? "Your top 10" : `Your top ${body.items.length}`;
    $("list-sub").textContent = listSubtitle(body);
    $("model-line").textContent = `Model version ${body.model_version}`;
    renderFeedback();
  }

  function listSubtitle(body) {
    const basis = body.basis;
    const parts = [];
    if (basis.kind === "known_user") parts.push(`Personal picks for customer ${basis.user_id}`);
    else if (state.userId !== null) parts.push(`Picks for customer ${state.userId}, from their age and gender`);
    else parts.push(`Picked for ${audience(basis)}`);
    const tuned = [];
    if (basis.n_liked) tuned.push(plural(basis.n_liked, "like"));
    if (basis.n_disliked) tuned.push(plural(basis.n_disliked, "film", "films") + " not for you");
    if (tuned.length) parts.push(`tuned by ${tuned.join(" and ")}`);
    return parts.join(", ") + ".";
  }

  function plural(n, word, many) {
    return `${n} ${n === 1 ? word : many || word + "s"}`;
  }

  // ------------------------------------------------------------------ likes

  async function vote(item, type, node) {
    clearError();
    const timer = type === "like" ? "like-to-list" : "dislike-to-list";
    startTimer(timer);
    const previous = { liked: [...state.liked], disliked: [...state.disliked] };
    state.liked = state.liked.filter((id) => id !== item.item_id);
    state.disliked = state.disliked.filter((id) => id !== item.item_id);
    (type === "like" ? state.liked : state.disliked).push(item.item_id);
    for (const button of node.querySelectorAll("button")) button.disabled = true;
    node.classList.add(type === "like" ? "voted-like" : "voted-dislike");
    const position = state.shown.indexOf(item.item_id);
    const who = state.userId !== null ? { user_id: state.userId } : { session_id: state.sessionId };
    // The event and the new list travel together: the list request names the likes itself,
    // so it need not wait for the event to be written.
    const saved = api("v1/events", { method: "POST", json: { events: [{ ...who, item_id: item.item_id, type }] } });
    const listed = refreshList({ timer, onError: () => { Object.assign(state, previous); } });
    const [event] = await Promise.allSettled([saved, listed]);
    if (event.status === "rejected") {
      Object.assign(state, previous);
      showError(event.reason, type === "like" ? "Your like wasn't saved." : "Your choice wasn't saved.");
      refreshList();
      return;
    }
    announce(`${type === "like" ? "Liked" : "Marked not for you:"} ${item.title}. The list was updated.`);
    // Focus stays where the hand is: the next film's buttons, at the same place in the list.
    const rows = $("items").children;
    const next = rows[Math.min(position, rows.length - 1)];
    const focusTarget = next ? next.querySelector(`.${type}`) : $("list-title");
    if (focusTarget && document.activeElement === document.body) focusTarget.focus();
  }

  function renderFeedback() {
    const names = (ids) => ids.map((id) => state.titles.get(id) || `#${id}`).join(", ");
    $("feedback").hidden = !state.liked.length && !state.disliked.length;
    $("liked-line").hidden = !state.liked.length;
    $("liked-line").textContent = `You liked: ${names(state.liked)}`;
    $("disliked-line").hidden = !state.disliked.length;
    $("disliked-line").textContent = `Not for you: ${names(state.disliked)}`;
  }

  // ------------------------------------------------------------------ what the camera saw

  function confidenceWord(camera) {
    if (!camera.gender_for_recommendation) return "unsure";
    return camera.gender_confidence >= 0.9 ? "confident" : "fairly sure";
  }

  function sawSentence() {
    const camera = state.camera;
    if (!camera) return "";
    const gender = camera.gender_for_recommendation ? GENDER_WORDS[camera.gender_for_recommendation] : "gender unknown";
    return `You look ${camera.age_band}, ${gender} (${confidenceWord(camera)})`;
  }

  function isUnsure(camera) {
    return !camera.gender_for_recommendation || camera.low_quality;
  }

  function renderProfile(body) {
    const user = state.userId !== null;
    $("correct-form").hidden = user;
    $("user-panel").hidden = !user;
    $("unsure-note").hidden = true;
    $("faces-note").hidden = true;
    $("saw-detail").textContent = "";
    const profile = $("profile");
    profile.classList.remove("unsure");
    if (user) {
      $("profile-title").textContent = `Customer ${state.userId}`;
      if (body) {
        const basis = body.basis;
        $("saw").textContent = basis.kind === "known_user"
          ? "A personal list, from what this customer watched and rated."
          : "This customer is newer than the model, so the list comes from their age and gender.";
        $("user-seen").textContent = String(basis.n_seen);
        $("user-model").textContent = `version ${body.model_version}`;
        $("user-note").textContent = basis.note || "";
      }
      return;
    }
    const person = state.person;
    fillBandSelect($("band"), person.band);
    for (const radio of document.querySelectorAll("input[name=gender]")) radio.checked = radio.value === (person.gender || "");
    const camera = state.camera;
    if (!camera) {
      $("profile-title").textContent = "What you told us";
      $("saw").replaceChildren(...sentence("Films for", person.band === "0-17" ? "under 18" : person.band,
        person.gender ? GENDER_WORDS[person.gender] : "any gender", null));
      $("correct-title").textContent = "Change your answers";
      arrangeProfile(false);
      return;
    }
    $("profile-title").textContent = "What the camera saw";
    $("correct-title").textContent = "Not quite right? Correct it";
    const seenGender = camera.gender_for_recommendation ? GENDER_WORDS[camera.gender_for_recommendation] : "gender unknown";
    $("saw").replaceChildren(...sentence("You look", camera.age_band, seenGender, confidenceWord(camera)));
    const sure = Math.round(camera.gender_confidence * 100);
    const genderDetail = camera.gender_for_recommendation
      ? `${GENDER_WORDS[camera.gender]}, ${sure}% sure`
      : `not used for the list (${GENDER_WORDS[camera.gender] || camera.gender}, only ${sure}% sure)`;
    $("saw-detail").textContent = `Estimated age about ${Math.round(camera.age)} (\u00b1${Math.round(camera.age_uncertainty)} years); gender: ${genderDetail}.`;
    const corrected = person.band !== camera.age_band || (person.gender || null) !== (camera.gender_for_recommendation || null);
    if (corrected) {
      const now = document.createElement("span");
      now.className = "corrected";
      now.textContent = ` Now showing films for ${person.band}, ${person.gender ? GENDER_WORDS[person.gender] : "any gender"} (your correction).`;
      $("saw").append(now);
    }
    if (state.otherFaces > 0) {
      $("faces-note").hidden = false;
      $("faces-note").textContent = `We saw ${state.otherFaces + 1} faces in the photo and used the largest one, nearest the camera. `
        + "If that wasn't you, start over and take the photo on your own, or correct the estimate below.";
    }
    if (isUnsure(camera)) {
      const reasons = [];
      if (!camera.gender_for_recommendation) {
        reasons.push(camera.age < 13 ? "gender isn't used for children" : "we couldn't tell your gender with confidence");
      }
      for (const issue of camera.quality_issues) reasons.push(QUALITY_WORDS[issue] || issue.replace(/_/g, " "));
      $("unsure-note").hidden = false;
      $("unsure-note").textContent = `We're not sure about this estimate: ${reasons.join("; ")}. `
        + "Please check your age band and gender here first; the list updates as you change them.";
      profile.classList.add("unsure");
    }
    arrangeProfile(isUnsure(camera));
  }

  // The profile card's order: when the estimate is unsure, the note and the correction come
  // before the estimate itself, so they are what a person (and a screen reader) meets first.
  const SURE_ORDER = ["profile-title", "saw", "saw-detail", "unsure-note", "faces-note", "correct-form", "user-panel", "feedback"];
  const UNSURE_ORDER = ["profile-title", "unsure-note", "faces-note", "correct-form", "saw", "saw-detail", "user-panel", "feedback"];

  function arrangeProfile(unsure) {
    const wanted = unsure ? UNSURE_ORDER : SURE_ORDER;
    const current = Array.from($("profile").children, (node) => node.id);
    // Only moved when the order changes: moving a node takes the keyboard focus out of it.
    if (current.join() !== wanted.join()) $("profile").append(...wanted.map((id) => $(id)));
  }

  function sentence(lead, band, gender, confidence) {
    const strongBand = document.createElement("strong");
    strongBand.textContent = band;
    const strongGender = document.createElement("strong");
    strongGender.textContent = gender;
    const parts = [`${lead} `, strongBand, ", ", strongGender];
    if (confidence) {
      const badge = document.createElement("span");
      badge.className = `badge badge-${confidence.replace(/\s/g, "-")}`;
      badge.textContent = confidence;
      parts.push(" ", badge);
    }
    return parts;
  }

  function fillBandSelect(select, chosen) {
    if (!select.options.length || select.options.length < AGE_BANDS.length) {
      const keep = Array.from(select.options).filter((o) => o.value === "");
      select.replaceChildren(...keep, ...AGE_BANDS.map(([name, , words]) => new Option(words === name ? name : `${name} (${words})`, name)));
    }
    if (chosen !== undefined) select.value = chosen || "";
  }

  function correct() {
    clearError();
    const band = $("band").value;
    const gender = document.querySelector("input[name=gender]:checked");
    const person = state.person;
    // The camera's own age stays when its band is kept; a new band sends that band's middle.
    const age = state.camera && band === state.camera.age_band ? state.camera.age : bandMiddle(band);
    const previous = { ...person };
    state.person = { ...person, band, age, gender: gender ? gender.value || null : null };
    startTimer("correction-to-list");
    refreshList({ timer: "correction-to-list", onError: () => { state.person = previous; renderProfile(); } }).then((body) => {
      if (body) announce(`The list now shows films for ${band}, ${state.person.gender ? GENDER_WORDS[state.person.gender] : "any gender"}.`);
    });
  }

  // ------------------------------------------------------------------ timings (performance marks)

  function startTimer(name) {
    performance.clearMarks(`${name}:start`);
    performance.mark(`${name}:start`);
  }

  function endTimer(name) {
    // "On screen": after the browser has had the chance to paint the new list.
    requestAnimationFrame(() => setTimeout(() => {
      performance.mark(`${name}:end`);
      try { performance.measure(name, `${name}:start`, `${name}:end`); } catch (e) { /* no start mark */ }
    }, 0));
  }

  // ------------------------------------------------------------------ wiring

  function init() {
    fillBandSelect($("form-band"));
    $("consent-yes").addEventListener("click", openCamera);
    $("consent-no").addEventListener("click", () => { clearError(); show("form-view", "form-title"); });
    $("camera-to-form").addEventListener("click", () => { stopCamera(); clearError(); show("form-view", "form-title"); });
    $("form-to-camera").addEventListener("click", openCamera);
    $("capture").addEventListener("click", capture);
    $("upload-button").addEventListener("click", () => $("upload").click());
    $("upload").addEventListener("change", uploadChosen);
    $("demographic-form").addEventListener("submit", submitForm);
    $("returning-form").addEventListener("submit", submitReturning);
    $("correct-form").addEventListener("change", correct);
    $("correct-form").addEventListener("submit", (e) => e.preventDefault());
    $("restart").addEventListener("click", startOver);
    $("error-close").addEventListener("click", clearError);
    document.body.dataset.view = "consent-view";
    document.body.dataset.session = state.sessionId;
    window.addEventListener("pagehide", stopCamera);
  }

  init();
})();
